"""Loss and metric of Fed-TCGA-BRCA: Cox partial likelihood on the batch, C-index (lifelines)."""

from __future__ import annotations

import math

import numpy as np
import torch
from lifelines.utils import concordance_index
from torch import Tensor

__all__ = ["cox_loss", "batched_cox_loss", "c_index"]


def cox_loss(scores: Tensor, targets: Tensor) -> Tensor:
    """Negative Cox partial log-likelihood of a batch, divided by the batch size (FLamby's convention).

    ``targets[:, 0]`` is the event indicator E, ``targets[:, 1]`` the time T. Samples are ranked by
    T descending; the risk set of sample i is every sample ranked at or before it.
    """
    order = torch.argsort(targets[:, 1], descending=True, stable=True)
    s = scores.reshape(-1)[order]
    weights = targets[order, 0] / s.shape[0]
    return torch.dot(torch.logcumsumexp(s, dim=0) - s, weights)


def batched_cox_loss(scores: Tensor, targets: Tensor) -> Tensor:
    """:func:`cox_loss` of each client's batch, ranked and risk-set per client: scores
    ``[clients, batch, 1]`` and targets ``[clients, batch, 2]`` -> ``[clients]``."""
    order = torch.argsort(targets[..., 1], dim=1, descending=True, stable=True)
    s = scores.reshape(scores.shape[0], -1).gather(1, order)
    weights = targets[..., 0].gather(1, order) / s.shape[1]
    return ((torch.logcumsumexp(s, dim=1) - s) * weights).sum(dim=1)


def c_index(outputs: Tensor, targets: Tensor) -> float:
    """Harrell's C-index of the risk scores, lifelines ``concordance_index(T, -s, E)`` (NaN if undefined)."""
    scores = outputs.reshape(-1).double().numpy()
    if not np.isfinite(scores).all():
        return math.nan
    try:
        return float(concordance_index(targets[:, 1].numpy(), -scores, targets[:, 0].numpy()))
    except ZeroDivisionError:  # no admissible pair (e.g. no event in a tiny split)
        return math.nan
