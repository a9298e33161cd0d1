"""Shared by the benchmark scripts (run them as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def data_dir_from(arg: str | None) -> Path:
    """``--data-dir``, else ``$AFR_DATA_DIR``, else the real data beside the clone (``../shared/data``)."""
    if arg:
        return Path(arg)
    env = os.environ.get("AFR_DATA_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "data"
