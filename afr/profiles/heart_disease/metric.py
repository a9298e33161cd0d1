"""Loss and metric of Fed-Heart-Disease: binary cross-entropy on probabilities, accuracy at 0.5."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["bce_loss", "batched_bce_loss", "accuracy"]


def bce_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """Binary cross-entropy of the predicted probabilities."""
    return nn.functional.binary_cross_entropy(outputs, targets)


def batched_bce_loss(outputs: Tensor, targets: Tensor) -> Tensor:
    """:func:`bce_loss` of each client's batch: ``[clients, batch, 1]`` -> ``[clients]``."""
    losses = nn.functional.binary_cross_entropy(outputs, targets, reduction="none")
    return losses.mean(dim=tuple(range(1, losses.dim())))


def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Share of samples whose probability falls on the right side of 0.5."""
    return float(((outputs > 0.5).float() == targets).float().mean())
