"""Reading Fed-Heart-Disease: FLamby's preprocessing, per-center split and per-center normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ...errors import DataError
from .._base import ClientData

__all__ = ["CENTERS", "read_center", "split_center", "load_centers"]

CENTERS = ("cleveland", "hungarian", "switzerland", "va")
COLUMNS = (
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
    "thalach", "exang", "oldpeak", "slope", "ca", "thal", "num",
)  # fmt: skip
NUMERIC = ("age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak")
ONE_HOT_LEVELS = {"cp": (1, 2, 3, 4), "restecg": (0, 1, 2)}


def read_center(path) -> tuple[np.ndarray, np.ndarray]:
    """One center's raw file -> (features [n, 13] float32, labels [n] float32), before the split."""
    try:
        frame = pd.read_csv(path, header=None, names=list(COLUMNS), na_values="?")
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path}: {exc}", fix="re-run `afr data fetch heart_disease`") from exc
    if frame.shape[1] != len(COLUMNS):
        raise DataError(f"{path} has {frame.shape[1]} columns, expected 14", fix="re-fetch the file")
    frame = frame.drop(columns=["slope", "ca", "thal"]).dropna()
    columns = [frame[c].to_numpy(dtype=np.float64) for c in NUMERIC]
    for col, levels in ONE_HOT_LEVELS.items():
        columns += [(frame[col].to_numpy() == level).astype(np.float64) for level in levels[1:]]
    features = np.stack(columns, axis=1).astype(np.float32)
    labels = (frame["num"].to_numpy() > 0).astype(np.float32)
    return features, labels


def split_center(features: np.ndarray, labels: np.ndarray) -> tuple[ClientData, ClientData]:
    """FLamby's per-center split and per-center normalisation."""
    _, counts = np.unique(labels, return_counts=True)
    stratify = labels if len(counts) == 2 and counts.min() > 2 else None
    from sklearn.model_selection import train_test_split  # lazy: sklearn costs ~0.5 s to import

    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, train_size=0.66, random_state=43, shuffle=True, stratify=stratify
    )
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0, ddof=1) + 1e-9

    def to_data(x: np.ndarray, y: np.ndarray) -> ClientData:
        normalised = ((x - mean) / std).astype(np.float32)
        return ClientData(torch.from_numpy(normalised), torch.from_numpy(y.astype(np.float32)).unsqueeze(1))

    return to_data(x_train, y_train), to_data(x_test, y_test)


def load_centers(folder: Path) -> tuple[list[ClientData], list[ClientData]]:
    """Every center's (train, test) from the raw files in ``folder``, in :data:`CENTERS` order."""
    train, test = [], []
    for center in CENTERS:
        tr, te = split_center(*read_center(folder / f"processed.{center}.data"))
        train.append(tr)
        test.append(te)
    return train, test
