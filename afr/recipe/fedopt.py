"""Adaptive server optimisers (Reddi et al., 2021): FedAdam, FedYogi, FedAdagrad.

As in FLamby: d = sum_k w_k Δ_k ; m <- b1*m + (1-b1)*d ; v <- (rule) ;
x <- x + server_lr * m / (sqrt(v) + tau), m and v start at 0, no bias correction.
Each subclass overrides only the second-moment rule.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._base import ClientUpdate, Params
from ._ops import (
    adagrad_second_moment,
    adam_second_moment,
    adaptive_step,
    first_moment,
    weighted_mean_delta,
    yogi_second_moment,
)
from ._scalar import scalar
from .fedavg import FedAvg

__all__ = ["FedOpt", "FedAdam", "FedYogi", "FedAdagrad"]


class FedOpt(FedAvg):
    """Shared first-moment update and server step; subclasses define :meth:`second_moment`."""

    name = "fedopt"

    server_lr = scalar(0.01, 1e-4, 1.0, log=True)
    beta1 = scalar(0.9, 0.0, 0.999)
    beta2 = scalar(0.999, 0.9, 0.99999)
    tau = scalar(1e-3, 1e-9, 1e-1, log=True)

    def second_moment(self, v: Tensor, d: Tensor) -> Tensor:
        raise NotImplementedError

    def aggregate(
        self, global_params: Params, updates: list[ClientUpdate], server_state: dict[str, Any]
    ) -> Params:
        delta = weighted_mean_delta(updates)
        m = server_state.setdefault("m", {k: torch.zeros_like(d) for k, d in delta.items()})
        v = server_state.setdefault("v", {k: torch.zeros_like(d) for k, d in delta.items()})
        new: Params = {}
        for k, d in delta.items():
            m[k] = first_moment(m[k], d, self.beta1)
            v[k] = self.second_moment(v[k], d)
            new[k] = adaptive_step(global_params[k], m[k], v[k], self.server_lr, self.tau)
        return new


class FedAdam(FedOpt):
    """v <- b2*v + (1-b2)*d²."""

    name = "fedadam"

    def second_moment(self, v: Tensor, d: Tensor) -> Tensor:
        return adam_second_moment(v, d, self.beta2)


class FedYogi(FedOpt):
    """v <- v - (1-b2)*d²*sign(v - d²)."""

    name = "fedyogi"

    def second_moment(self, v: Tensor, d: Tensor) -> Tensor:
        return yogi_second_moment(v, d, self.beta2)


class FedAdagrad(FedOpt):
    """v <- v + d²."""

    name = "fedadagrad"

    def second_moment(self, v: Tensor, d: Tensor) -> Tensor:
        return adagrad_second_moment(v, d)
