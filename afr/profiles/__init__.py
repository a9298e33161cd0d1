"""Task profiles: one package plus one YAML per task, all exposing the same :class:`Profile` interface.

``afr/profiles/<name>/`` holds ``profile.py`` (the :class:`Profile` subclass), ``dataset.py``, ``model.py``,
``metric.py`` and ``fetch.py`` (its :class:`~afr.data.DataSource`); ``afr/conf/profile/<name>.yaml`` names
the class with ``_target_``. Profiles are found from the YAMLs (:func:`profile_names`), never a registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ._base import (
    TRAINING_PARTS,
    Budget,
    ClientData,
    Evaluation,
    LinearHead,
    Part,
    Profile,
    VerdictSpec,
    resolve_device,
)
from ._contract import CommunicationContract, ContractViolation
from ._discovery import (
    PROFILE_MODULES,
    SearchPath,
    budget_presets,
    config_dirs,
    import_root,
    load_profile_config,
    make_profile,
    profile_class,
    profile_names,
)

__all__ = [
    "Profile",
    "ClientData",
    "Budget",
    "Evaluation",
    "LinearHead",
    "Part",
    "TRAINING_PARTS",
    "VerdictSpec",
    "resolve_device",
    "CommunicationContract",
    "ContractViolation",
    "PROFILE_MODULES",
    "config_dirs",
    "profile_names",
    "profile_class",
    "load_profile_config",
    "make_profile",
    "import_root",
    "apply_budget",
    "budget_presets",
    "unknown_budget_preset",
    "BUDGET_DEFAULT",
]

BUDGET_DEFAULT = "default"
"""The budget preset that leaves a profile's YAML as written (its published budget)."""


def apply_budget(cfg: Mapping[str, Any], preset: str | None, search_path: SearchPath = ()) -> dict[str, Any]:
    """``cfg`` with the preset file ``budget_preset/<preset>/<name>.yaml`` merged over it, as Hydra's
    ``budget=<preset>`` does on the command line (``default``/None: unchanged, recorded as ``default``).

    For use outside the Hydra CLI (benchmarks, tests); the preset records its own name under
    ``budget_preset``. An unknown preset: ``ConfigError`` naming the profile's presets.
    """
    from omegaconf import OmegaConf

    config = dict(cfg)
    name = BUDGET_DEFAULT if preset is None else str(preset)
    if name == BUDGET_DEFAULT:
        config.setdefault("budget_preset", BUDGET_DEFAULT)
        return config
    presets = budget_presets(str(config.get("name")), search_path)
    if name not in presets:
        raise unknown_budget_preset(str(config.get("name")), name, search_path)
    merged = OmegaConf.to_container(OmegaConf.merge(config, presets[name]), resolve=True)
    assert isinstance(merged, dict)
    return merged  # type: ignore[return-value]


def unknown_budget_preset(profile: str, preset: str, search_path: SearchPath = ()) -> ConfigError:
    """The one-line error for ``budget=<preset>`` on a profile that has no such preset."""
    known = [BUDGET_DEFAULT, *budget_presets(profile, search_path)]
    return ConfigError(
        f"profile {profile!r} has no budget preset {preset!r}",
        where=f"budget={preset}",
        fix=f"use one of: {', '.join(known)} (a preset is a file budget_preset/{preset}/{profile}.yaml in a "
        "config folder, plus budget/<preset>.yaml)",
    )
