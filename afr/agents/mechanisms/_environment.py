"""What the agent knows about the profile (:class:`Environment`), parsed from the context it is given.

Either the campaign's typed brief (:func:`environment_from_brief`) or the texts of a hand-made context
(:func:`environment`): the profile description (YAML of ``Profile.describe()``: keys ``name``,
``clients``, ``budget`` (``rounds``, ``local_steps``, ``batch_size``), ``metric``, ``higher_is_better``,
``model_variants``) and the per-profile surface document (mutable hooks, the baseline's scalar table,
model variants and the communication contract). Every field has a safe fallback when the text lacks it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...recipe import DEFAULT_BASELINE, RecipeSource, Scalar, recipe_source
from .._brief import TaskBrief
from ._base import HOOK_ORDER, MECHANISMS, Gene, Genome, clip_tidy
from .server import ADAPTIVE_SERVERS


@dataclass(frozen=True)
class Environment:
    """What the agent knows about the profile: scalar ranges, rounds, variants, hooks, the contract."""

    profile: str = ""
    baseline: RecipeSource = field(default_factory=lambda: recipe_source(DEFAULT_BASELINE))
    lr: Scalar = Scalar(0.01, 1e-5, 1.0, log=True)
    server_lr: Scalar = Scalar(1.0, 0.1, 3.0, log=True)
    adaptive_server_lr: float = 0.03
    horizon: int = 20
    """Rounds of the profile's budget (schedules reach their end at the last round)."""
    model_variants: tuple[str, ...] = ()
    """Non-default model variants."""
    mutable_hooks: frozenset[str] = frozenset(HOOK_ORDER)
    control_extras: bool = True
    """Whether the contract carries ``control`` extras both ways (SCAFFOLD needs it)."""
    enabled: tuple[str, ...] | None = None

    def applicable(self, key: str) -> bool:
        mech = MECHANISMS[key]
        if self.enabled is not None and key not in self.enabled:
            return False
        if not set(mech.hooks) <= self.mutable_hooks:
            return False
        if key == "scaffold" and not self.control_extras:
            return False
        return not (key == "model_variant" and not self.model_variants)

    def variants(self, key: str) -> tuple[str, ...]:
        return self.model_variants if key == "model_variant" else MECHANISMS[key].variants

    def options(self, slot: str | None = None) -> list[Gene]:
        """Every applicable (mechanism, variant) pair, in library order."""
        out = []
        for key, mech in MECHANISMS.items():
            if (slot is None or mech.slot == slot) and self.applicable(key):
                out.extend(Gene(key, v) for v in (self.variants(key) or ("",)))
        return out

    def base_specs(self, genome: Genome) -> dict[str, Scalar]:
        server = genome.gene("server")
        server_lr = self.server_lr
        if server is not None and server.key in ADAPTIVE_SERVERS:
            server_lr = server_lr.with_default(clip_tidy(server_lr, self.adaptive_server_lr))
        return {"lr": self.lr, "server_lr": server_lr}

    def specs(self, genome: Genome) -> dict[str, Scalar]:
        """Every scalar the genome's file declares, base scalars first."""
        out = self.base_specs(genome)
        for gene in genome.genes:
            out.update(gene.mechanism.scalar_specs(gene.variant))
        return out


def environment(
    profile_name: str,
    profile_description: str,
    surface_doc: str,
    cfg: Mapping[str, Any] | None = None,
    baseline: RecipeSource | None = None,
) -> Environment:
    """What the agent knows about the profile, from the texts of its context (see the module doc)."""
    cfg = dict(cfg or {})
    described = _parse_description(profile_description)
    section = _profile_section(surface_doc, profile_name)
    table = _scalar_table(section)
    horizon = described.get("rounds") or 20
    variants = cfg.get("model_variants") or described.get("model_variants") or _doc_variants(section)
    hooks = _doc_hooks(section)
    enabled = cfg.get("mechanisms")
    return Environment(
        profile=profile_name,
        baseline=baseline or recipe_source(DEFAULT_BASELINE),
        lr=table.get("lr", Environment.lr),
        server_lr=table.get("server_lr", Environment.server_lr),
        adaptive_server_lr=float(cfg.get("adaptive_server_lr", 0.03)),
        horizon=max(1, int(horizon)),
        model_variants=tuple(str(v) for v in variants if str(v) != "default"),
        mutable_hooks=frozenset(hooks) if hooks else frozenset(HOOK_ORDER),
        control_extras=_doc_contract(section),
        enabled=tuple(enabled) if enabled else None,
    )


def environment_from_brief(brief: TaskBrief, cfg: Mapping[str, Any] | None = None) -> Environment:
    """What the agent knows about the profile, read from the campaign's typed brief (no text parsing)."""
    cfg = dict(cfg or {})
    variants = cfg.get("model_variants") or brief.model_variants
    hooks = [h for h in brief.mutable_hooks if h in HOOK_ORDER]
    enabled = cfg.get("mechanisms")
    return Environment(
        profile=brief.profile,
        baseline=brief.baseline,
        lr=_unnamed(brief.scalars.get("lr", Environment.lr)),
        server_lr=_unnamed(brief.scalars.get("server_lr", Environment.server_lr)),
        adaptive_server_lr=float(cfg.get("adaptive_server_lr", 0.03)),
        horizon=max(1, int(brief.rounds)),
        model_variants=tuple(str(v) for v in variants if str(v) != "default"),
        mutable_hooks=frozenset(hooks) if hooks else frozenset(HOOK_ORDER),
        control_extras=brief.control_extras,
        enabled=tuple(enabled) if enabled else None,
    )


def _unnamed(spec: Scalar) -> Scalar:
    """The spec as the environment keeps it: a range, not bound to a class attribute's name."""
    return Scalar(spec.default, spec.low, spec.high, spec.log, spec.integer)


def _parse_description(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    data: Any = None
    try:
        import yaml

        data = yaml.safe_load(text) if text else None
    except Exception:  # not YAML: fall back to the regular expressions below
        data = None
    if isinstance(data, dict):
        budget = data.get("budget")
        if isinstance(budget, dict) and isinstance(budget.get("rounds"), int):
            out["rounds"] = budget["rounds"]
        elif isinstance(data.get("rounds"), int):
            out["rounds"] = data["rounds"]
        variants = data.get("model_variants")
        if isinstance(variants, list | tuple):
            out["model_variants"] = [str(v) for v in variants]
        return out
    found = re.search(r"rounds\W+(\d+)", text or "")
    if found:
        out["rounds"] = int(found.group(1))
    return out


def _profile_section(doc: str, profile: str) -> str:
    if not doc:
        return ""
    start = doc.find(f"## Profile `{profile}`")
    if start < 0:
        return doc
    end = doc.find("\n## ", start + 4)
    return doc[start:] if end < 0 else doc[start:end]


_ROW = re.compile(
    r"^\|\s*`(\w+)`\s*\|\s*([-+.\deE]+)\s*\|\s*([-+.\deE]+)\s*\|\s*([-+.\deE]+)\s*\|\s*(True|False)\s*\|"
    r"\s*(True|False)\s*\|",
    re.M,
)


def _scalar_table(section: str) -> dict[str, Scalar]:
    start = section.find("Tunable scalar space")
    if start < 0:
        return {}
    out = {}
    for m in _ROW.finditer(section[start:]):
        try:
            spec = Scalar(
                float(m.group(2)),
                float(m.group(3)),
                float(m.group(4)),
                m.group(5) == "True",
                m.group(6) == "True",
            )
        except ValueError:
            continue
        if spec.low <= spec.default <= spec.high and not (spec.log and spec.low <= 0):
            out.setdefault(m.group(1), spec)
    return out


def _doc_variants(section: str) -> list[str]:
    m = re.search(r"Model variants[^\n:]*:\s*([^\n]*)", section)
    return re.findall(r"`(\w+)`", m.group(1)) if m else []


def _doc_hooks(section: str) -> list[str]:
    start = section.find("### Mutable hooks")
    if start < 0:
        return []
    end = section.find("\n### ", start + 5)
    block = section[start : end if end > 0 else None]
    return [h for h in re.findall(r"^- `(\w+)\(", block, re.M) if h in HOOK_ORDER]


def _doc_contract(section: str) -> bool:
    start = section.find("### Communication contract")
    if start < 0:
        return True
    block = section[start:]
    return bool(re.search(r"\|\s*upload\s*\|\s*`control`", block)) and bool(
        re.search(r"\|\s*download\s*\|\s*`control`", block)
    )


def genome_values(genome: Genome, env: Environment) -> dict[str, float]:
    """The effective value of every declared scalar (defaults where the genome has none)."""
    return {
        key: clip_tidy(spec, genome.values[key]) if key in genome.values else spec.default
        for key, spec in env.specs(genome).items()
    }
