"""Fed-KiTS19's loss and metric: nnU-Net's Dice + cross-entropy; FLamby's kidney+tumour / tumour Dice
averaged over test batches of 2 cases."""

from __future__ import annotations

from torch import Tensor

from .._segmentation import dice_ce_loss, kits_batched_dice

__all__ = ["dice_ce_loss", "batched_dice", "EVAL_GROUP"]

EVAL_GROUP = 2  # FLamby's KiTS19 test batch size: the metric is averaged over batches of 2 cases


def batched_dice(logits: Tensor, labels: Tensor) -> float:
    """FLamby's KiTS19 metric: :func:`~afr.profiles._segmentation.kits_batched_dice` per batch of 2 cases."""
    return kits_batched_dice(logits, labels, EVAL_GROUP)
