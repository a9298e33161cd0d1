"""The structured task brief: what every agent is told about the task, as typed facts.

The campaign builds one :class:`TaskBrief` per campaign from its profile and surface table
(``afr/campaign/_brief.py``) and hands it to the agent inside each :class:`~afr.agents.AgentContext`;
the campaign history (best candidates, failures) travels beside it in the context. Agents read the
fields directly — the evolve agent's environment, the LLM prompts (compact or full) — instead of
re-parsing the Markdown surface document, which stays here only for the full prompt.

Agents never import the surface or the profiles (the layering contract): the brief holds plain values
and :class:`~afr.recipe.Scalar` specs only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..recipe import DEFAULT_BASELINE, RecipeSource, Scalar, recipe_source

__all__ = ["TaskBrief"]


def _frozen(mapping: Mapping | None) -> Mapping:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class TaskBrief:
    """The task facts of one campaign (profile, surface, contract, scalars, baseline)."""

    profile: str
    metric: str
    higher_is_better: bool
    description: str = ""
    """The profile's own description (YAML of ``Profile.describe()``), for the full prompt."""
    rounds: int = 20
    local_steps: int = 1
    batch_size: int = 32
    clients: int | None = None
    model_variants: tuple[str, ...] = ()
    """Every model variant of the profile, ``default`` included when it has one."""
    mutable_hooks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Hook -> its exact parameter names (``self`` first), for the hooks a candidate may override."""
    frozen_hooks: tuple[str, ...] = ()
    recipe_bases: tuple[str, ...] = ("FedAvg",)
    """Classes of ``afr.recipe`` a candidate class may derive from."""
    recipe_names: tuple[str, ...] = ()
    """Names a candidate may import from ``afr.recipe``."""
    allowed_modules: tuple[str, ...] = ()
    """Modules a candidate may import from (``torch``, ``math``, ...)."""
    forbidden_names: tuple[str, ...] = ()
    upload_extras: Mapping[str, float] = field(default_factory=dict)
    """Contract: extra payload kinds a client may upload -> byte cap (multiples of the parameter bytes)."""
    download_extras: Mapping[str, float] = field(default_factory=dict)
    scalars: Mapping[str, Scalar] = field(default_factory=dict)
    """The baseline's tunable scalars with this profile's ranges (the control arm's space)."""
    max_lines: int = 400
    max_bytes: int = 20_000
    baseline: RecipeSource = field(default_factory=lambda: recipe_source(DEFAULT_BASELINE))
    surface_doc: str = ""
    """The per-profile surface document (Markdown), rendered only into the full prompt."""

    def __post_init__(self) -> None:
        for name in ("mutable_hooks", "upload_extras", "download_extras", "scalars"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def bases(self) -> frozenset[str]:
        """Class names a candidate's recipe class may derive from (the baseline's and the recipe bases)."""
        return frozenset({self.baseline.class_name, *self.recipe_bases})

    @property
    def control_extras(self) -> bool:
        """Whether the contract carries ``control`` extras both ways (SCAFFOLD-style methods need it)."""
        return "control" in self.upload_extras and "control" in self.download_extras
