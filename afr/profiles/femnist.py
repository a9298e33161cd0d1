"""FEMNIST (LEAF): handwritten digits and letters of NIST SD19, one LEAF user per writer, 62 classes.

Data: LEAF JSON in ``<data_dir>/femnist/{train,test}`` -- as LEAF writes it (x = 784 floats
k/255, 28x28 row-major, 1.0 = white background; y = 0-9 digits, 10-35 upper, 36-61 lower case) or
as ``afr data fetch femnist`` produces it from NIST's raw zips (``afr/data/prepare/femnist.py``).
Pixels are stored as uint8 (lossless for k/255 values) and become float (N, 1, 28, 28) in
:meth:`Femnist.train_batch` / :meth:`Femnist.eval_inputs`.

Grouping (``grouping:`` in the YAML): ``rule: hash`` -- writer ``w`` joins group
``sha256(w) mod (K + H)``. FEMNIST users are fairly even (226.8 +- 88.9 samples) and have no natural
attribute that survives LEAF's sampling: the 100-writer ``all_data_<i>`` chunks are arbitrary cuts of
the writer list (niid sampling acts per chunk, so each chunk keeps only ~5 writers at 5 %), so a hash
of the writer id is the honest rule, and it keeps a writer's group fixed whatever sample of writers
is present. ``rule: attribute`` groups by source chunk instead. On the shipped 105-writer subset,
K = 5 training groups + H = 1 held-out group gives 13-25 writers (1.6k-3.7k training images) per
group -- FLamby-like cross-silo scale (K = 2-6, a few thousand samples per client) -- and keeps 16
writers (2,328 images) never seen in training.

Model: LEAF's CNN (conv5x5 32 'same' ReLU, maxpool 2, conv5x5 64 'same' ReLU, maxpool 2,
dense 3136 -> 2048 ReLU, dense 2048 -> 62 logits; 6,603,710 parameters) and a registered
variant ``small_cnn`` (16 / 32 channels, dense 1568 -> 128; 222,078 parameters) for CPU budgets;
``default`` is the one named by the YAML's ``default_model`` (``leaf_cnn`` unless a preset says
otherwise). Cross-entropy, accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import DataError
from ._base import ClientData
from ._leaf import LeafProfile
from ._leaf import default_model_name as _default_model

__all__ = ["Femnist", "FemnistCNN", "NUM_CLASSES", "IMAGE_SIZE"]

NUM_CLASSES = 62
IMAGE_SIZE = 28


class FemnistCNN(nn.Module):
    """LEAF's FEMNIST CNN (``channels=(32, 64), hidden=2048``); smaller widths for the ``small`` variant."""

    def __init__(self, channels: tuple[int, int] = (32, 64), hidden: int = 2048) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


def _pixels(inputs: Tensor) -> Tensor:
    """Stored uint8 rows (N, 784) -> float images (N, 1, 28, 28) in [0, 1]."""
    return inputs.reshape(-1, 1, IMAGE_SIZE, IMAGE_SIZE).float().div_(255.0)


class Femnist(LeafProfile):
    name = "femnist"
    metric_name = "accuracy"
    higher_is_better = True
    model_variants: ClassVar = {
        "default": lambda p: p.build_model(p.default_model),
        "leaf_cnn": lambda p: FemnistCNN(),
        "small_cnn": lambda p: FemnistCNN(channels=(16, 32), hidden=128),
    }
    attribute_name = "a source file (LEAF's 100-writer chunk)"

    def __init__(self, cfg: Mapping[str, Any], data_dir: str | Path | None = None) -> None:
        super().__init__(cfg, data_dir)
        self.default_model = _default_model(self.cfg, ("leaf_cnn", "small_cnn"), self.name)

    def encode(self, xs: list, ys: list) -> ClientData:
        pixels = np.asarray(xs, dtype=np.float64)
        if pixels.ndim != 2 or pixels.shape[1] != IMAGE_SIZE * IMAGE_SIZE:
            raise DataError(
                f"FEMNIST x must be lists of {IMAGE_SIZE * IMAGE_SIZE} floats, got shape {pixels.shape}",
                fix="use LEAF's FEMNIST JSON (28x28 images flattened) or `afr data fetch femnist`",
            )
        scaled = pixels * 255.0
        levels = np.rint(scaled)
        if len(pixels) and (np.abs(scaled - levels).max() > 1e-4 or levels.min() < 0 or levels.max() > 255):
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

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return _pixels(inputs), targets

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        return _pixels(inputs)
