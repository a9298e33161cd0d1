"""Reading Fed-TCGA-BRCA: the covariates table and FLamby's per-region train/test split (``fold2``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...errors import DataError
from .._base import ClientData

__all__ = ["REGIONS", "NUM_FEATURES", "read_tables", "load_regions"]

REGIONS = ("Northeast", "South", "West", "Midwest", "Europe", "Canada")
NUM_FEATURES = 39


def read_tables(folder) -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        data = pd.read_csv(folder / "brca.csv")
        split = pd.read_csv(folder / "train_test_split.csv")
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(
            f"cannot read the TCGA-BRCA tables in {folder}: {exc}", fix="re-run `afr data fetch tcga_brca`"
        ) from exc
    expected = {"pid", "E", "T"}
    if not expected <= set(data.columns) or data.shape[1] != NUM_FEATURES + 3:
        raise DataError(
            f"{folder / 'brca.csv'} does not have pid, 39 covariates, E and T", fix="re-fetch the file"
        )
    return data, split


def load_regions(folder: Path) -> tuple[list[ClientData], list[ClientData]]:
    """Every region's (train, test): covariates as inputs, (E, T) as targets."""
    data, split = read_tables(folder)
    merged = data.merge(split, on="pid", how="inner")
    covariates = [c for c in data.columns if c not in ("pid", "E", "T")]
    train, test = [], []
    for k in range(len(REGIONS)):
        for fold, out in (("train", train), ("test", test)):
            rows = merged[merged["fold2"] == f"{fold}_{k}"]
            x = torch.tensor(rows[covariates].to_numpy(dtype=np.float32))
            y = torch.tensor(rows[["E", "T"]].to_numpy(dtype=np.float32))
            out.append(ClientData(x, y))
    return train, test
