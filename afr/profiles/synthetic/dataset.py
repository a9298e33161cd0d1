"""Generating Synthetic(α, β): FedProx's per-device draw, LEAF's 90/10 split, devices grouped into clients."""

from __future__ import annotations

import numpy as np
import torch

from .._base import ClientData

__all__ = ["generate_devices", "device_groups", "client_splits"]


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


def device_groups(num_devices: int, num_clients: int) -> list[list[int]]:
    """Which devices form each client (the written grouping rule: device d -> client d mod K)."""
    return [list(range(c, num_devices, num_clients)) for c in range(num_clients)]


def client_splits(
    devices: list[tuple[np.ndarray, np.ndarray]],
    groups: list[list[int]],
    *,
    train_fraction: float,
    seed: int,
) -> tuple[list[ClientData], list[ClientData]]:
    """Each device's random ``train_fraction`` / rest split (drawn from ``seed``), merged per group."""
    split_rng = np.random.default_rng(seed)
    parts = []
    for x, y in devices:
        order = split_rng.permutation(len(y))
        n_train = int(train_fraction * len(y))
        parts.append(((x[order[:n_train]], y[order[:n_train]]), (x[order[n_train:]], y[order[n_train:]])))
    train, test = [], []
    for group in groups:
        for which, out in ((0, train), (1, test)):
            x = np.concatenate([parts[d][which][0] for d in group])
            y = np.concatenate([parts[d][which][1] for d in group])
            out.append(ClientData(torch.from_numpy(x), torch.from_numpy(y)))
    return train, test
