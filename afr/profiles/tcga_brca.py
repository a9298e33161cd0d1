"""Fed-TCGA-BRCA (FLamby): breast-cancer survival from 39 clinical covariates, 6 regions as centers.

Centers and the train/test split come from FLamby's published ``train_test_split.csv``
(``fold2`` = ``train_k`` / ``test_k``). Model: Cox proportional hazards, Linear(39 -> 1);
loss: Cox partial likelihood on the batch; metric: C-index, lifelines ``concordance_index(T, -s, E)``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from lifelines.utils import concordance_index
from torch import Tensor, nn

from ..data import require
from ..errors import DataError
from ._base import ClientData, Profile

__all__ = ["TcgaBrca", "cox_loss"]

REGIONS = ("Northeast", "South", "West", "Midwest", "Europe", "Canada")
NUM_FEATURES = 39


def cox_loss(scores: Tensor, targets: Tensor) -> Tensor:
    """Negative Cox partial log-likelihood of a batch, divided by the batch size (FLamby's convention).

    ``targets[:, 0]`` is the event indicator E, ``targets[:, 1]`` the time T. Samples are ranked by
    T descending; the risk set of sample i is every sample ranked at or before it.
    """
    order = torch.argsort(targets[:, 1], descending=True, stable=True)
    s = scores.reshape(-1)[order]
    weights = targets[order, 0] / s.shape[0]
    return torch.dot(torch.logcumsumexp(s, dim=0) - s, weights)


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


class CoxModel(nn.Module):
    """FLamby's Baseline: Linear(39 -> 1), the output is the log-risk score."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(NUM_FEATURES, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class CoxMLP(nn.Module):
    """A registered alternative: a small non-linear risk model."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TcgaBrca(Profile):
    name = "tcga_brca"
    metric_name = "c_index"
    higher_is_better = True
    model_variants: ClassVar = {
        "default": lambda p: CoxModel(),
        "mlp": lambda p: CoxMLP(),
    }

    @property
    def client_names(self) -> list[str]:
        return list(REGIONS)

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        data, split = read_tables(require(self.name, self.data_dir))
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

    def stratify_labels(self, data: ClientData) -> np.ndarray:
        return data.targets[:, 0].numpy()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return cox_loss(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        scores = outputs.reshape(-1).double().numpy()
        if not np.isfinite(scores).all():
            return math.nan
        try:
            return float(concordance_index(targets[:, 1].numpy(), -scores, targets[:, 0].numpy()))
        except ZeroDivisionError:  # no admissible pair (e.g. no event in a tiny split)
            return math.nan
