"""FedAvgM (Hsu et al., 2019): FedAvg with server momentum."""

from __future__ import annotations

from typing import Any

import torch

from ._base import ClientUpdate, Params
from ._ops import heavy_ball, weighted_mean_delta
from ._scalar import scalar
from .fedavg import FedAvg

__all__ = ["FedAvgM"]


class FedAvgM(FedAvg):
    """v <- beta * v + sum_k w_k Δ_k ; x <- x + server_lr * v."""

    name = "fedavgm"

    server_momentum = scalar(0.9, 0.0, 0.99)

    def aggregate(
        self, global_params: Params, updates: list[ClientUpdate], server_state: dict[str, Any]
    ) -> Params:
        delta = weighted_mean_delta(updates)
        velocity = server_state.setdefault("velocity", {k: torch.zeros_like(v) for k, v in delta.items()})
        for k, d in delta.items():
            velocity[k] = heavy_ball(velocity[k], d, self.server_momentum)
        return {k: global_params[k] + self.server_lr * velocity[k] for k in global_params}
