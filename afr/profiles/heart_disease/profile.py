"""The Fed-Heart-Disease profile: 4 hospitals, binary diagnosis (see the package docstring)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import Tensor, nn

from .._base import ClientData, LinearHead, Profile
from .dataset import CENTERS, load_centers
from .fetch import SOURCE
from .metric import accuracy, batched_bce_loss, bce_loss, sigmoid_bce_sample_grad, sigmoid_bce_sample_loss
from .model import LogisticRegression, SmallMLP

__all__ = ["HeartDisease"]


class HeartDisease(Profile):
    name = "heart_disease"
    metric_name = "accuracy"
    higher_is_better = True
    source = SOURCE
    model_variants: ClassVar = {
        "default": lambda p: LogisticRegression(),
        "mlp": lambda p: SmallMLP(),
    }

    @property
    def client_names(self) -> list[str]:
        return list(CENTERS)

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        return load_centers(self.require_data())

    def stratify_labels(self, data: ClientData) -> np.ndarray:
        return data.targets.squeeze(1).numpy()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return bce_loss(outputs, targets)

    def batched_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return batched_bce_loss(outputs, targets)

    def linear_head(self, model: nn.Module) -> LinearHead | None:
        if type(model) is not LogisticRegression:  # the MLP variant trains with autograd
            return None
        return LinearHead(model.linear, sigmoid_bce_sample_loss, sigmoid_bce_sample_grad)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return accuracy(outputs, targets)
