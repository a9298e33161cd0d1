"""Task profiles: one module per task, all exposing the same :class:`Profile` interface."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._base import TRAINING_PARTS, Budget, ClientData, Evaluation, Part, Profile, resolve_device
from ._contract import CommunicationContract, ContractViolation

__all__ = [
    "Profile",
    "ClientData",
    "Budget",
    "Evaluation",
    "Part",
    "TRAINING_PARTS",
    "resolve_device",
    "CommunicationContract",
    "ContractViolation",
    "PROFILES",
    "profile_class",
    "load_profile_config",
    "make_profile",
    "apply_budget",
    "BUDGET_DEFAULT",
]

PROFILES: dict[str, str] = {
    "heart_disease": "afr.profiles.heart_disease:HeartDisease",
    "tcga_brca": "afr.profiles.tcga_brca:TcgaBrca",
    "synthetic": "afr.profiles.synthetic:Synthetic",
    "isic2019": "afr.profiles.isic2019:Isic2019",
    "ixi": "afr.profiles.ixi:FedIXI",
    "kits19": "afr.profiles.kits19:FedKiTS19",
    "sent140": "afr.profiles.sent140:Sent140",
    "celeba": "afr.profiles.celeba:Celeba",
    "reddit": "afr.profiles.reddit:Reddit",
    "femnist": "afr.profiles.femnist:Femnist",
    "shakespeare": "afr.profiles.shakespeare:Shakespeare",
}

CONF_DIR = Path(__file__).resolve().parent.parent / "conf" / "profile"


def profile_class(name: str) -> type[Profile]:
    """The profile class registered under ``name`` (imported lazily)."""
    if name not in PROFILES:
        raise ConfigError(
            f"unknown profile {name!r}", where="profile=", fix=f"use one of {', '.join(sorted(PROFILES))}"
        )
    module, _, attr = PROFILES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def load_profile_config(name: str) -> dict[str, Any]:
    """The profile's shipped YAML as a plain dict (for use outside the Hydra CLI)."""
    from omegaconf import OmegaConf

    profile_class(name)
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{name}.yaml"), resolve=True)  # type: ignore[return-value]


def make_profile(
    name: str, cfg: Mapping[str, Any] | None = None, data_dir: str | Path | None = None, **overrides: Any
) -> Profile:
    """Build a profile from its shipped YAML (or ``cfg``), with keyword overrides."""
    config = dict(cfg) if cfg is not None else load_profile_config(name)
    config.update(overrides)
    return profile_class(name)(config, data_dir)


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
