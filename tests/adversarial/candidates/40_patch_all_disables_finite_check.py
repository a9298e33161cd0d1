# ruff: noqa
# ATTACK: patch torch.Tensor.all through a self alias so the engine's isfinite(...).all() check on the
# ATTACK: aggregated weights always passes, return NaN weights, and keep the loss value finite with
# ATTACK: nan_to_num: the run "succeeds" and a NaN model is scored and saved
# MUST: rejected:attribute-assignment
# WHY: assigning attributes on objects reached through self (here the torch.Tensor class) patches the engine
# CATEGORY: monkeypatch
import torch

from afr.recipe import FedAvg


class BlindChecks(FedAvg):
    name = "blind_checks"

    def local_objective(self, task_loss, model, ctx):
        return torch.nan_to_num(task_loss)

    def aggregate(self, global_params, updates, server_state):
        self.cls = torch.Tensor
        self.cls.all = lambda t, *args, **kwargs: True
        return {k: torch.full_like(v, torch.nan) for k, v in global_params.items()}
