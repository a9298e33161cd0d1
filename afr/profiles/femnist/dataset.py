"""FEMNIST's samples: LEAF JSON pixel lists stored as uint8 rows, turned into float images per batch."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ...errors import DataError
from .._base import ClientData

__all__ = ["NUM_CLASSES", "IMAGE_SIZE", "encode_images", "pixels"]

NUM_CLASSES = 62
IMAGE_SIZE = 28


def encode_images(xs: list, ys: list) -> ClientData:
    """LEAF's pixel lists (k/255 floats) -> uint8 rows (N, 784), labels -> int64 (``DataError`` if bad)."""
    grey = np.asarray(xs, dtype=np.float64)
    if grey.ndim != 2 or grey.shape[1] != IMAGE_SIZE * IMAGE_SIZE:
        raise DataError(
            f"FEMNIST x must be lists of {IMAGE_SIZE * IMAGE_SIZE} floats, got shape {grey.shape}",
            fix="use LEAF's FEMNIST JSON (28x28 images flattened) or `afr data fetch femnist`",
        )
    scaled = grey * 255.0
    levels = np.rint(scaled)
    if len(grey) and (np.abs(scaled - levels).max() > 1e-4 or levels.min() < 0 or levels.max() > 255):
        raise DataError(
            "FEMNIST pixels must be LEAF's grey levels k/255 in [0, 1]",
            fix="use LEAF's FEMNIST JSON (pixel / 255 floats) or `afr data fetch femnist`",
        )
    labels = np.asarray(ys)
    if labels.size and (
        not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= NUM_CLASSES
    ):
        raise DataError(
            f"FEMNIST labels must be integers 0..{NUM_CLASSES - 1}",
            fix="use LEAF's FEMNIST JSON or `afr data fetch femnist`",
        )
    return ClientData(
        torch.from_numpy(levels.astype(np.uint8)).reshape(-1, IMAGE_SIZE * IMAGE_SIZE),
        torch.from_numpy(labels.astype(np.int64)).reshape(-1),
    )


def pixels(inputs: Tensor) -> Tensor:
    """Stored uint8 rows (N, 784) -> float images (N, 1, 28, 28) in [0, 1]."""
    return inputs.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE).float().div_(255.0)
