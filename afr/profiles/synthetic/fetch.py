"""Synthetic(α, β) has nothing to download: its data is generated from ``data_seed`` (see dataset.py)."""

from __future__ import annotations

from ...data import DataSource

__all__ = ["SOURCE"]

SOURCE = DataSource()
