"""SCAFFOLD (Karimireddy et al., 2020), option II, with full participation.

The server keeps a control variate c and broadcasts it as the contract's ``control`` extra; each
client keeps its own c_i, corrects its gradient by (c - c_i), and uploads Δc_i beside its delta.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ._base import ClientUpdate, LocalContext, Params
from ._ops import (
    scaffold_broadcast,
    scaffold_client_control,
    scaffold_correction,
    scaffold_server_control,
    weighted_mean_delta,
)
from .fedavg import FedAvg

__all__ = ["Scaffold"]


class Scaffold(FedAvg):
    """Local gradient g - c_i + c; c_i+ = c_i - c - Δ/(K·lr); x += server_lr·mean Δ; c += mean Δc_i."""

    name = "scaffold"

    def broadcast(self, round_idx: int, server_state: dict[str, Any]) -> Params:
        return scaffold_broadcast(server_state)

    def local_objective(self, task_loss: Tensor, model: nn.Module, ctx: LocalContext) -> Tensor:
        return scaffold_correction(task_loss, model, ctx)

    def client_extras(self, delta: Params, ctx: LocalContext) -> Params:
        return scaffold_client_control(delta, ctx)

    def aggregate(
        self, global_params: Params, updates: list[ClientUpdate], server_state: dict[str, Any]
    ) -> Params:
        delta = weighted_mean_delta(updates)
        scaffold_server_control(server_state, global_params, updates)
        return {k: global_params[k] + self.server_lr * delta[k] for k in global_params}
