"""Small tensor helpers shared by recipes (pure functions on parameter dicts)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ._base import ClientUpdate, Params

__all__ = ["weighted_mean_delta", "proximal_term", "sample_weights"]


def sample_weights(updates: Sequence[ClientUpdate]) -> list[float]:
    """FedAvg weights w_k = n_k / sum_j n_j."""
    total = float(sum(u.num_samples for u in updates))
    return [u.num_samples / total for u in updates]


def weighted_mean_delta(updates: Sequence[ClientUpdate], weights: Sequence[float] | None = None) -> Params:
    """Weighted average of the client deltas (sample weights by default)."""
    if not updates:
        raise ValueError("no client updates to aggregate")
    weights = sample_weights(updates) if weights is None else weights
    out: Params = {}
    for key in updates[0].delta:
        acc = torch.zeros_like(updates[0].delta[key])
        for update, weight in zip(updates, weights, strict=True):
            acc.add_(update.delta[key], alpha=weight)
        out[key] = acc
    return out


def proximal_term(model: nn.Module, reference: Params) -> Tensor:
    """Squared L2 distance between the model's parameters and ``reference`` (FedProx's ||θ - x||²)."""
    total: Tensor | None = None
    for name, param in model.named_parameters():
        term = (param - reference[name]).pow(2).sum()
        total = term if total is None else total + term
    assert total is not None, "model has no parameters"
    return total
