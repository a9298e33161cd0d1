"""The Fed-TCGA-BRCA profile: survival from clinical covariates, 6 regions (see the package docstring)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import Tensor

from .._base import ClientData, Profile
from .dataset import REGIONS, load_regions
from .fetch import SOURCE
from .metric import batched_cox_loss, c_index, cox_loss
from .model import CoxMLP, CoxModel

__all__ = ["TcgaBrca"]


class TcgaBrca(Profile):
    name = "tcga_brca"
    metric_name = "c_index"
    higher_is_better = True
    source = SOURCE
    model_variants: ClassVar = {
        "default": lambda p: CoxModel(),
        "mlp": lambda p: CoxMLP(),
    }

    @property
    def client_names(self) -> list[str]:
        return list(REGIONS)

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        return load_regions(self.require_data())

    def stratify_labels(self, data: ClientData) -> np.ndarray:
        return data.targets[:, 0].numpy()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return cox_loss(outputs, targets)

    def batched_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return batched_cox_loss(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return c_index(outputs, targets)
