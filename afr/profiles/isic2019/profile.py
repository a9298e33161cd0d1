"""The Fed-ISIC2019 profile: 8-class dermoscopy, 6 centers (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ...errors import ConfigError, DataError
from .._base import ClientData, Profile
from .dataset import CROP_SIZE, augment, center_crop, load_centers, normalize
from .fetch import CENTERS, CLASSES, SOURCE
from .fetch import WEIGHTS as PRETRAINED_WEIGHTS
from .metric import CLASS_WEIGHTS, balanced_accuracy, focal_loss
from .model import EfficientNet, efficientnet_b0, load_pretrained

__all__ = ["Isic2019"]

MODELS = ("efficientnet_b0", "efficientnet_tiny")


class Isic2019(Profile):
    """Fed-ISIC2019 with FLamby's split, preprocessing, model, loss and metric."""

    name = "isic2019"
    metric_name = "balanced_accuracy"
    higher_is_better = True
    source = SOURCE
    model_variants: ClassVar = {
        "default": lambda p: p.build_model(p.default_model),
        "efficientnet_b0": lambda p: p._efficientnet_b0(),
        "efficientnet_tiny": lambda p: EfficientNet(len(CLASSES), width=0.25, depth=0.25),
    }

    def __init__(self, cfg: Mapping[str, Any], data_dir: str | Path | None = None) -> None:
        super().__init__(cfg, data_dir)
        self.default_model = str(self.cfg.get("default_model", "efficientnet_b0"))
        if self.default_model not in MODELS:
            raise ConfigError(
                f"default_model must be one of {', '.join(MODELS)}, got {self.default_model!r}",
                where=f"afr/conf/profile/{self.name}.yaml: default_model",
            )
        pretrained = self.cfg.get("pretrained", False)
        if not isinstance(pretrained, bool):
            raise ConfigError(
                f"pretrained must be true or false, got {pretrained!r}",
                where=f"afr/conf/profile/{self.name}.yaml: pretrained",
            )
        self.pretrained = pretrained
        cap = self.cfg.get("max_images_per_client")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(
                f"max_images_per_client must be a positive integer or null, got {cap!r}",
                where=f"afr/conf/profile/{self.name}.yaml: max_images_per_client",
            )
        self.max_images_per_client: int | None = cap
        self.alpha = torch.tensor(CLASS_WEIGHTS)

    @property
    def client_names(self) -> list[str]:
        return list(CENTERS)

    # --- data --------------------------------------------------------------------------------------

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        return load_centers(self.require_data(), self.max_images_per_client)

    def stratify_labels(self, data: ClientData) -> np.ndarray:
        return data.targets.numpy()

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return augment(inputs, generator), targets

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        return normalize(center_crop(inputs, CROP_SIZE))

    # --- model, loss, metric -----------------------------------------------------------------------

    def _efficientnet_b0(self) -> nn.Module:
        model = efficientnet_b0(len(CLASSES))
        if not self.pretrained:
            return model
        path = self.data_path / PRETRAINED_WEIGHTS.filename
        hint = "python -m afr.profiles.isic2019 weights" + (
            f" --data-dir {self.data_dir}" if self.data_dir else ""
        )
        if not path.is_file():
            raise DataError(
                "pretrained: true but the EfficientNet-B0 ImageNet weights are not downloaded",
                where=str(path),
                fix=f"run `{hint}`, or set profile.pretrained=false (random initialisation)",
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            load_pretrained(model, state)
        except (OSError, RuntimeError, ValueError, AttributeError) as exc:
            raise DataError(
                f"cannot use the ImageNet weights {path.name}: {exc}",
                where=str(path),
                fix=f"delete the file and run `{hint}` again",
            ) from exc
        return model

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return focal_loss(outputs, targets, self.alpha)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return balanced_accuracy(outputs, targets)
