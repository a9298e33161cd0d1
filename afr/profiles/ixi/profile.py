"""The Fed-IXI profile: brain-mask segmentation, 3 hospitals (see the package docstring)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from .._base import ClientData, Profile
from .dataset import CENTERS, load_centers
from .fetch import SOURCE
from .metric import soft_dice_loss, soft_dice_score
from .model import UNet3D

__all__ = ["FedIXI"]


class FedIXI(Profile):
    name = "ixi"
    metric_name = "dice"
    higher_is_better = True
    source = SOURCE
    eval_batch_size = 8
    model_variants: ClassVar = {
        "default": lambda p: UNet3D(width=8),
        "small": lambda p: UNet3D(width=4),
    }

    @property
    def client_names(self) -> list[str]:
        return list(CENTERS)

    def grouping_rule(self) -> str:
        return "one client per hospital (Guys, HH, IOP) from the subject folder name; FLamby's split file"

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        return load_centers(self.require_data())

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """float16 images and uint8 one-hot masks -> float32 (FLamby trains IXI without augmentation)."""
        return inputs.float(), targets.float()

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        return inputs.float()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return soft_dice_loss(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return soft_dice_score(outputs, targets.float())
