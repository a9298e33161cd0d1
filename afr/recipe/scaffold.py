"""SCAFFOLD (Karimireddy et al., 2020), option II, with full participation.

The server keeps a control variate c and broadcasts it as the contract's ``control`` extra; each
client keeps its own c_i, corrects its gradient by (c - c_i), and uploads Δc_i beside its delta.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ._base import ClientUpdate, LocalContext, Params
from ._ops import weighted_mean_delta
from .fedavg import FedAvg

__all__ = ["Scaffold"]


class Scaffold(FedAvg):
    """Local gradient g - c_i + c; c_i+ = c_i - c - Δ/(K·lr); x += server_lr·mean Δ; c += mean Δc_i."""

    name = "scaffold"

    def broadcast(self, round_idx: int, server_state: dict[str, Any]) -> Params:
        return {f"control.{k}": v for k, v in server_state.get("control", {}).items()}

    def local_objective(self, task_loss: Tensor, model: nn.Module, ctx: LocalContext) -> Tensor:
        own = ctx.client_state.get("control", {})
        correction = task_loss
        for name, param in model.named_parameters():
            server_c = ctx.server_extras.get(f"control.{name}")
            client_c = own.get(name)
            if server_c is not None:
                correction = correction + (param * server_c).sum()
            if client_c is not None:
                correction = correction - (param * client_c).sum()
        return correction

    def client_extras(self, delta: Params, ctx: LocalContext) -> Params:
        if ctx.num_steps == 0 or ctx.lr == 0:
            return {}
        own = ctx.client_state.setdefault("control", {k: torch.zeros_like(v) for k, v in delta.items()})
        upload: Params = {}
        for name, d in delta.items():
            server_c = ctx.server_extras.get(f"control.{name}", torch.zeros_like(d))
            updated = own[name] - server_c - d / (ctx.num_steps * ctx.lr)
            upload[f"control.{name}"] = updated - own[name]
            own[name] = updated
        return upload

    def aggregate(
        self, global_params: Params, updates: list[ClientUpdate], server_state: dict[str, Any]
    ) -> Params:
        delta = weighted_mean_delta(updates)
        zeros = {k: torch.zeros_like(v) for k, v in global_params.items()}
        control = server_state.setdefault("control", zeros)
        reporting = [u for u in updates if u.extras]
        for name in control:
            for update in reporting:
                control[name] = control[name] + update.extras[f"control.{name}"] / len(reporting)
        return {k: global_params[k] + self.server_lr * delta[k] for k in global_params}
