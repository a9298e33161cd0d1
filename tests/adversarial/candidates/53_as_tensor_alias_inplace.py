# ruff: noqa
# ATTACK: torch.as_tensor(p.detach().numpy()) is a new tensor (fresh version counter) sharing p's storage:
# ATTACK: in-place ops on it rewrite the global parameters unseen
# MUST: rejected:forbidden-attribute
# WHY: the global parameters are read-only for clients
# CATEGORY: step-budget
import torch

from afr.recipe import FedAvg


class AsTensorAlias(FedAvg):
    name = "as_tensor_alias"

    def local_objective(self, task_loss, model, ctx):
        for value in ctx.global_params.values():
            alias = torch.as_tensor(value.numpy())
            alias.mul_(0.0)
        return task_loss
