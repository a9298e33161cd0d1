"""The Synthetic(α, β) profile: FedProx's synthetic task with devices grouped into clients (see the package
docstring)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from torch import Tensor, nn

from ...errors import ConfigError
from .._base import ClientData, LinearHead, Profile
from .dataset import client_splits, device_groups, generate_devices
from .fetch import SOURCE
from .metric import (
    accuracy,
    batched_cross_entropy,
    cross_entropy,
    cross_entropy_sample_grad,
    cross_entropy_sample_loss,
)
from .model import MultinomialLogisticRegression, SmallMLP

__all__ = ["Synthetic"]


class Synthetic(Profile):
    name = "synthetic"
    metric_name = "accuracy"
    higher_is_better = True
    source = SOURCE
    model_variants: ClassVar = {
        "default": lambda p: MultinomialLogisticRegression(p.dim, p.num_classes),
        "mlp": lambda p: SmallMLP(p.dim, p.num_classes),
    }

    def __init__(self, cfg, data_dir=None) -> None:
        super().__init__(cfg, data_dir)
        try:
            self.alpha = float(cfg.get("alpha", 1.0))
            self.beta = float(cfg.get("beta", 1.0))
            self.iid = bool(cfg.get("iid", False))
            self.num_devices = int(cfg.get("num_devices", 30))
            self.num_clients_cfg = int(cfg.get("num_clients", 10))
            self.dim = int(cfg.get("dim", 60))
            self.num_classes = int(cfg.get("num_classes", 10))
            self.data_seed = int(cfg.get("data_seed", 0))
            self.train_fraction = float(cfg.get("train_fraction", 0.9))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"synthetic profile config is malformed: {exc}", where="profile.*") from exc
        if min(self.alpha, self.beta) < 0:
            raise ConfigError("alpha and beta must be >= 0", where="profile.alpha / profile.beta")
        if not 1 <= self.num_clients_cfg <= self.num_devices:
            raise ConfigError(
                f"num_clients must be in [1, num_devices={self.num_devices}], got {self.num_clients_cfg}",
                where="profile.num_clients",
            )

    @property
    def client_names(self) -> list[str]:
        return [f"client_{c}" for c in range(self.num_clients_cfg)]

    def grouping_rule(self) -> str:
        return (
            f"FedProx synthetic({self.cfg.get('alpha')}, {self.cfg.get('beta')}) with "
            f"{self.num_devices} devices; "
            f"device d joins client d mod {self.num_clients_cfg}; data drawn once from data_seed "
            f"{self.cfg.get('data_seed', 0)}"
        )

    def device_groups(self) -> list[list[int]]:
        """Which devices form each client (the written grouping rule: device d -> client d mod K)."""
        return device_groups(self.num_devices, self.num_clients_cfg)

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        devices = generate_devices(
            self.alpha,
            self.beta,
            iid=self.iid,
            num_devices=self.num_devices,
            dim=self.dim,
            num_classes=self.num_classes,
            seed=self.data_seed,
        )
        return client_splits(
            devices, self.device_groups(), train_fraction=self.train_fraction, seed=self.data_seed + 1
        )

    def stratify_labels(self, data: ClientData) -> np.ndarray:
        return data.targets.numpy()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return cross_entropy(outputs, targets)

    def batched_loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return batched_cross_entropy(outputs, targets)

    def linear_head(self, model: nn.Module) -> LinearHead | None:
        if type(model) is not MultinomialLogisticRegression:  # the MLP variant trains with autograd
            return None
        return LinearHead(model.linear, cross_entropy_sample_loss, cross_entropy_sample_grad)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return accuracy(outputs, targets)
