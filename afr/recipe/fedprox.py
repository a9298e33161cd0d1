"""FedProx (Li et al., 2020): FedAvg plus a proximal term in the local objective."""

from __future__ import annotations

from torch import Tensor, nn

from ._base import LocalContext
from ._ops import proximal_term
from ._scalar import scalar
from .fedavg import FedAvg

__all__ = ["FedProx"]


class FedProx(FedAvg):
    """Local loss = task loss + mu/2 * ||θ - x||², x the global parameters at round start."""

    name = "fedprox"

    mu = scalar(0.01, 1e-4, 10.0, log=True)

    def local_objective(self, task_loss: Tensor, model: nn.Module, ctx: LocalContext) -> Tensor:
        return task_loss + self.mu / 2 * proximal_term(model, ctx.global_params)
