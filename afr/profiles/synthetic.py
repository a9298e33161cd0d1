"""Synthetic(α, β) of FedProx (Li et al., 2020), written from the paper's definition.

Device k has n_k = floor(lognormal(4, 2)) + 50 samples; u_k ~ N(0, α²), W_k, b_k ~ N(u_k, 1);
B_k ~ N(0, β²), v_k ~ N(B_k, 1)^60; x ~ N(v_k, Σ) with Σ = diag(j^-1.2); y = argmax(xᵀW_k + b_k).
The iid variant shares one W, b ~ N(0, 1) and draws every x from N(0, Σ). Each device keeps a
random 90 % of its samples for training and 10 % for test (LEAF's split).

Grouping rule (devices -> clients): device d joins client ``d mod num_clients``, so every client
mixes ``num_devices / num_clients`` devices of different (W_k, v_k); the data is drawn once from
``data_seed`` and never depends on a run's seed.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ._base import ClientData, Profile

__all__ = ["Synthetic", "generate_devices"]


def generate_devices(
    alpha: float,
    beta: float,
    *,
    iid: bool = False,
    num_devices: int = 30,
    dim: int = 60,
    num_classes: int = 10,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-device (x [n_k, dim] float32, y [n_k] int64), FedProx's synthetic(α, β) or its iid variant."""
    rng = np.random.default_rng(seed)
    sizes = np.floor(rng.lognormal(4, 2, num_devices)).astype(np.int64) + 50
    std = np.arange(1, dim + 1, dtype=np.float64) ** (-1.2 / 2)  # sqrt of diag(Σ)
    u = rng.normal(0, alpha, num_devices)
    b_mean = rng.normal(0, beta, num_devices)
    shared_w = rng.normal(0, 1, (dim, num_classes))
    shared_b = rng.normal(0, 1, num_classes)
    devices = []
    for k in range(num_devices):
        if iid:
            w, b, v = shared_w, shared_b, np.zeros(dim)
        else:
            w = rng.normal(u[k], 1, (dim, num_classes))
            b = rng.normal(u[k], 1, num_classes)
            v = rng.normal(b_mean[k], 1, dim)
        x = v + rng.normal(0, 1, (sizes[k], dim)) * std
        y = np.argmax(x @ w + b, axis=1)
        devices.append((x.astype(np.float32), y.astype(np.int64)))
    return devices


class MultinomialLogisticRegression(nn.Module):
    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class SmallMLP(nn.Module):
    def __init__(self, dim: int, num_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Synthetic(Profile):
    name = "synthetic"
    metric_name = "accuracy"
    higher_is_better = True
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
        return [list(range(c, self.num_devices, self.num_clients_cfg)) for c in range(self.num_clients_cfg)]

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
        split_rng = np.random.default_rng(self.data_seed + 1)
        parts = []
        for x, y in devices:
            order = split_rng.permutation(len(y))
            n_train = int(self.train_fraction * len(y))
            parts.append(((x[order[:n_train]], y[order[:n_train]]), (x[order[n_train:]], y[order[n_train:]])))
        train, test = [], []
        for group in self.device_groups():
            for which, out in ((0, train), (1, test)):
                x = np.concatenate([parts[d][which][0] for d in group])
                y = np.concatenate([parts[d][which][1] for d in group])
                out.append(ClientData(torch.from_numpy(x), torch.from_numpy(y)))
        return train, test

    def stratify_labels(self, data: ClientData) -> np.ndarray:
        return data.targets.numpy()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return nn.functional.cross_entropy(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return float((outputs.argmax(dim=1) == targets).float().mean())
