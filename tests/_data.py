"""afr.data's functions by profile name, for the tests (as `afr data fetch|verify <profile>` resolves it).

The source is read from the profile package's ``fetch.SOURCE`` at call time, so a test may monkeypatch
it (e.g. with published md5s for a local mirror); an unknown name is the discovery's ``ConfigError``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from afr import data
from afr.data import DataSource
from afr.profiles import profile_class

__all__ = ["source", "fetch", "require", "verify"]


def source(profile: str) -> DataSource:
    package = profile_class(profile).__module__.rpartition(".")[0]
    return importlib.import_module(f"{package}.fetch").SOURCE


def fetch(profile: str, data_dir: Path | str | None = None, **options: Any) -> list[Path]:
    return data.fetch(profile, source(profile), data_dir, **options)


def require(profile: str, data_dir: Path | str | None = None) -> Path:
    return data.require(profile, source(profile), data_dir)


def verify(profile: str, data_dir: Path | str | None = None) -> dict[str, bool]:
    return data.verify(profile, source(profile), data_dir)
