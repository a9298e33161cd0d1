"""Fed-IXI's loss and metric: soft Dice loss and soft Dice score over (sample, channel), as FLamby."""

from __future__ import annotations

from .._segmentation import soft_dice_loss, soft_dice_score

__all__ = ["soft_dice_loss", "soft_dice_score"]
