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
    Part,
    Profile,
    VerdictSpec,
    resolve_device,
)
from ._contract import CommunicationContract, ContractViolation
from ._discovery import (
    PROFILE_MODULES,
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
    "BUDGET_DEFAULT",
]

BUDGET_DEFAULT = "default"
"""The budget preset that leaves a profile's YAML as written (its published budget)."""


def apply_budget(cfg: Mapping[str, Any], preset: str | None) -> dict[str, Any]:
    """``cfg`` with the YAML ``budgets.<preset>`` block merged over it (``default``/None: unchanged).

    A preset may set any profile key (rounds, local_steps, batch_size, campaign_runs, data caps...);
    the result records the preset's name under ``budget_preset``.
    """
    config = dict(cfg)
    name = BUDGET_DEFAULT if preset is None else str(preset)
    presets = config.get("budgets") or {}
    if name == BUDGET_DEFAULT:
        config.setdefault("budget_preset", BUDGET_DEFAULT)
        return config
    if not isinstance(presets, Mapping) or name not in presets:
        known = [BUDGET_DEFAULT, *sorted(presets)] if isinstance(presets, Mapping) else [BUDGET_DEFAULT]
        raise ConfigError(
            f"profile {config.get('name')!r} has no budget preset {name!r}",
            where=f"budget={name}",
            fix=f"use one of: {', '.join(known)} (presets live under budgets: in the profile YAML)",
        )
    block = presets[name]
    if not isinstance(block, Mapping):
        raise ConfigError(
            f"budget preset {name!r} must be a mapping of profile keys, got {block!r}",
            where=f"afr/conf/profile/{config.get('name')}.yaml: budgets.{name}",
        )
    for key, value in block.items():
        if isinstance(value, Mapping) and isinstance(config.get(key), Mapping):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    config["budget_preset"] = name
    return config
