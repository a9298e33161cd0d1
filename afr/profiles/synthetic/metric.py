"""Loss and metric of Synthetic(α, β): cross-entropy on logits, accuracy."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["cross_entropy", "accuracy"]


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the logits."""
    return nn.functional.cross_entropy(outputs, targets)


def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Share of samples whose arg-max logit is the label."""
    return float((outputs.argmax(dim=1) == targets).float().mean())
