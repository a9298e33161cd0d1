"""Loss and metric of Fed-Heart-Disease: binary cross-entropy on probabilities, accuracy at 0.5."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["bce_loss", "batched_bce_loss", "sigmoid_bce_sample_loss", "sigmoid_bce_sample_grad", "accuracy"]


def bce_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """Binary cross-entropy of the predicted probabilities."""
    return nn.functional.binary_cross_entropy(outputs, targets)


def batched_bce_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """:func:`bce_loss` of each client's batch: ``[clients, batch, 1]`` -> ``[clients]``."""
    losses = nn.functional.binary_cross_entropy(outputs, targets, reduction="none")
    return losses.mean(dim=tuple(range(1, losses.dim())))


def sigmoid_bce_sample_loss(z: Tensor, targets: Tensor) -> Tensor:
    """Each sample's :func:`bce_loss` of ``sigmoid(z)``: ``[clients, batch, out]`` -> ``[clients, batch]``."""
    losses = nn.functional.binary_cross_entropy(torch.sigmoid(z), targets, reduction="none")
    return losses.mean(dim=-1)


def sigmoid_bce_sample_grad(z: Tensor, targets: Tensor, scale: Tensor) -> Tensor:
    """d/dz of the sum over samples of ``scale`` x :func:`sigmoid_bce_sample_loss`, ``[clients, batch, out]``
    (``scale`` ``[clients, batch, 1]``): autograd's own backward kernels of binary_cross_entropy and sigmoid,
    so a saturated probability gets what autograd gives it (zero), not the textbook p - y."""
    p = torch.sigmoid(z)
    scale = scale.expand_as(p) if p.shape[-1] == 1 else scale.expand_as(p) / p.shape[-1]  # mean over outputs
    grad = torch.ops.aten.binary_cross_entropy_backward.default(scale, p, targets, None, 0)
    return torch.ops.aten.sigmoid_backward.default(grad, p)


def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Share of samples whose probability falls on the right side of 0.5."""
    return float(((outputs > 0.5).float() == targets).float().mean())
