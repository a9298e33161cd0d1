"""Loss and metric of Synthetic(α, β): cross-entropy on logits, accuracy."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["cross_entropy", "batched_cross_entropy", "accuracy"]


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the logits."""
    return nn.functional.cross_entropy(outputs, targets)


def batched_cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """:func:`cross_entropy` of each client's batch: logits ``[clients, batch, classes]`` -> ``[clients]``."""
    losses = nn.functional.cross_entropy(outputs.flatten(0, 1), targets.flatten(), reduction="none")
    return losses.view(outputs.shape[0], -1).mean(dim=1)


def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Share of samples whose arg-max logit is the label."""
    return float((outputs.argmax(dim=1) == targets).float().mean())
