"""Shared pieces of the 3D segmentation profiles (ixi, kits19): Dice losses and metrics, crops and patch
geometry (NIfTI reading: :mod:`afr.profiles._nifti`).

The formulas follow FLamby's (FL_FACTS §2): IXI's soft Dice loss and soft Dice metric over (sample,
channel), KiTS19's nnU-Net Dice + cross-entropy loss and its kidney+tumour / tumour Dice metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from monai.losses import DiceCELoss, DiceLoss
from torch import Tensor

__all__ = [
    "SPATIAL_DIMS",
    "soft_dice_loss",
    "soft_dice_score",
    "dice_ce_loss",
    "kits_dice",
    "kits_batched_dice",
    "crop_or_pad",
    "centred_start",
]

SPATIAL_DIMS = (2, 3, 4)
"""Spatial axes of a (batch, channel, depth, height, width) tensor."""


def soft_dice_loss(probs: Tensor, one_hot: Tensor) -> Tensor:
    """IXI's loss: mean over (sample, channel) of ``1 - 2TP / (2TP + FP + FN + 1e-9)`` on soft predictions.

    With soft TP = Σpg, FP = Σp(1-g), FN = Σ(1-p)g, the denominator is Σp + Σg: MONAI's ``DiceLoss``
    without smoothing of the numerator and 1e-9 in the denominator is exactly this loss.
    """
    loss = DiceLoss(include_background=True, smooth_nr=0.0, smooth_dr=1e-9, reduction="mean")
    return loss(probs, one_hot.to(probs.dtype))


def soft_dice_score(probs: Tensor, one_hot: Tensor) -> float:
    """IXI's metric: ``Σpg / (Σ½(p+g) + 1e-7)`` per sample and channel, 1 where both are empty, then
    the mean over samples and channels (FLamby's ``metric`` on softmax outputs, no thresholding)."""
    if probs.shape != one_hot.shape or probs.dim() != 5:
        raise ValueError(
            f"expected two (N, C, D, H, W) tensors of one shape, got {probs.shape}, {one_hot.shape}"
        )
    p, g = probs.double(), one_hot.double()
    intersection = (p * g).sum(dim=SPATIAL_DIMS)
    union = (0.5 * (p + g)).sum(dim=SPATIAL_DIMS)
    dice = intersection / (union + 1e-7)
    dice[union == 0] = 1.0
    return float(dice.mean()) if dice.numel() else math.nan


def dice_ce_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """KiTS19's loss, nnU-Net's ``DC_and_CE_loss``: cross-entropy + soft Dice on the softmax, Dice
    computed over the whole batch (batch_dice), background excluded, smooth 1e-5, weights 1 / 1.

    nnU-Net adds the *negative* Dice; MONAI's ``DiceCELoss`` adds ``1 - Dice``: the same gradient,
    the loss value is higher by exactly 1. ``labels`` holds class indices, shape (N, 1, D, H, W).
    """
    loss = DiceCELoss(
        include_background=False,
        to_onehot_y=True,
        softmax=True,
        batch=True,
        smooth_nr=1e-5,
        smooth_dr=1e-5,
        lambda_dice=1.0,
        lambda_ce=1.0,
    )
    return loss(logits, labels.long())


def _dice(pred: Tensor, truth: Tensor, eps: float = 1e-5) -> float:
    pred, truth = pred.double(), truth.double()
    return float(2 * (pred * truth).sum() / (pred.sum() + truth.sum() + eps))


def kits_dice(pred_labels: Tensor, true_labels: Tensor) -> float:
    """FLamby's KiTS19 metric on label maps (0 background, 1 kidney, 2 tumour): the mean of the
    kidney+tumour Dice (label > 0) and the tumour Dice (label = 2), each summed over the whole batch
    with eps 1e-5 (so a batch without any tumour, predicted or true, scores 0 on the tumour term)."""
    if pred_labels.shape != true_labels.shape:
        raise ValueError(f"label maps differ in shape: {pred_labels.shape} vs {true_labels.shape}")
    composite = _dice(pred_labels > 0, true_labels > 0)
    tumour = _dice(pred_labels == 2, true_labels == 2)
    return (composite + tumour) / 2


def kits_batched_dice(logits: Tensor, labels: Tensor, batch_size: int = 2) -> float:
    """:func:`kits_dice` of the argmax per consecutive batch of ``batch_size`` cases, averaged over
    batches (FLamby evaluates KiTS19 with test batches of 2 and averages the per-batch scores)."""
    if len(logits) == 0:
        return math.nan
    pred = logits.argmax(dim=1)
    truth = labels.reshape(pred.shape)
    scores = [
        kits_dice(pred[i : i + batch_size], truth[i : i + batch_size])
        for i in range(0, len(pred), batch_size)
    ]
    return float(np.mean(scores))


def centred_start(centre: Sequence[int], size: Sequence[int]) -> tuple[int, ...]:
    """Start corner of a box of ``size`` centred on the voxel ``centre``."""
    return tuple(int(c) - s // 2 for c, s in zip(centre, size, strict=True))


def crop_or_pad(volume: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float) -> np.ndarray:
    """The box ``[start, start + size)`` of a 3-D ``volume``; parts outside the volume are ``fill``."""
    out = np.full(tuple(size), fill, dtype=volume.dtype)
    src, dst = [], []
    for lo, n, dim in zip(start, size, volume.shape, strict=True):
        a, b = max(lo, 0), min(lo + n, dim)
        if a >= b:
            return out
        src.append(slice(a, b))
        dst.append(slice(a - lo, b - lo))
    out[tuple(dst)] = volume[tuple(src)]
    return out
