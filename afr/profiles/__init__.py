"""Task profiles: one module per task, all exposing the same :class:`Profile` interface."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._base import TRAINING_PARTS, Budget, ClientData, Evaluation, Part, Profile
from ._contract import CommunicationContract, ContractViolation

__all__ = [
    "Profile",
    "ClientData",
    "Budget",
    "Evaluation",
    "Part",
    "TRAINING_PARTS",
    "CommunicationContract",
    "ContractViolation",
    "PROFILES",
    "profile_class",
    "load_profile_config",
    "make_profile",
]

PROFILES: dict[str, str] = {
    "heart_disease": "afr.profiles.heart_disease:HeartDisease",
    "tcga_brca": "afr.profiles.tcga_brca:TcgaBrca",
    "synthetic": "afr.profiles.synthetic:Synthetic",
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
