"""Campaign settings as ``afr run`` parses them (Hydra's compose, then ``afr.run.campaign_settings``), for
the tests of configuration rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_module

from afr.run import campaign_settings

__all__ = ["parsed_settings"]


def parsed_settings(directory: Path, *overrides: str) -> Any:
    """The :class:`CampaignSettings` of ``afr run agent=evolve campaign.dir=<directory> <overrides>``."""
    with initialize_config_module(config_module="afr.conf", version_base="1.3"):
        cfg = compose(
            config_name="config", overrides=["agent=evolve", f"campaign.dir={directory}", *overrides]
        )
    return campaign_settings(cfg)
