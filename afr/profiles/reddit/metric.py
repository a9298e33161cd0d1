"""Reddit's loss and metric: cross-entropy and accuracy over the unmasked target tokens."""

from __future__ import annotations

from torch import Tensor, nn

from .dataset import IGNORE, PAD, UNK

__all__ = ["masked_cross_entropy", "token_accuracy"]


def masked_cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy over the unmasked target tokens of the batch."""
    return nn.functional.cross_entropy(
        outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1), ignore_index=IGNORE
    )


def token_accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Accuracy over unmasked tokens; ``outputs``: logits ``[n, seq, V]`` or predicted ids."""
    predicted = outputs.argmax(dim=-1) if outputs.ndim == 3 else outputs
    counted = targets != IGNORE
    total = int(counted.sum())
    if total == 0:
        return float("nan")
    correct = (predicted == targets) & counted & (predicted != PAD) & (predicted != UNK)
    return float(correct.sum()) / total
