"""FedAvg (McMahan et al., 2017): the baseline recipe every candidate derives from."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ._base import ClientUpdate, LocalContext, Params, Recipe
from ._ops import weighted_mean_delta
from ._scalar import scalar

__all__ = ["FedAvg"]


class FedAvg(Recipe):
    """All clients every round, the full step budget, plain task loss, x <- x + server_lr * sum_k w_k Δ_k."""

    name = "fedavg"

    lr = scalar(0.01, 1e-5, 1.0, log=True)
    server_lr = scalar(1.0, 0.1, 3.0, log=True)

    def model_variant(self) -> str:
        return "default"

    def select_clients(self, round_idx: int, num_clients: int, rng: torch.Generator) -> list[int]:
        return list(range(num_clients))

    def local_steps(self, round_idx: int, client: int, max_steps: int) -> int:
        return max_steps

    def client_lr(self, round_idx: int, client: int) -> float:
        return self.lr

    def local_objective(self, task_loss: Tensor, model: nn.Module, ctx: LocalContext) -> Tensor:
        return task_loss

    def aggregate(
        self, global_params: Params, updates: list[ClientUpdate], server_state: dict[str, Any]
    ) -> Params:
        delta = weighted_mean_delta(updates)
        return {k: global_params[k] + self.server_lr * delta[k] for k in global_params}
