"""The FEMNIST profile: LEAF writers grouped into clients (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._base import ClientData
from .._leaf import LeafProfile
from .._leaf import default_model_name as _default_model
from .dataset import encode_images, pixels
from .fetch import SOURCE
from .metric import accuracy, cross_entropy
from .model import FemnistCNN

__all__ = ["Femnist"]


class Femnist(LeafProfile):
    name = "femnist"
    metric_name = "accuracy"
    higher_is_better = True
    source = SOURCE
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
        return encode_images(xs, ys)

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return pixels(inputs), targets

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        return pixels(inputs)

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return cross_entropy(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return accuracy(outputs, targets)
