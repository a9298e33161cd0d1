# ruff: noqa
# ATTACK: swap a parameter of the model for a fresh one (model.linear.weight = Parameter(...)): the engine's
# ATTACK: optimiser keeps stepping the old tensor while the forward pass uses the candidate's
# MUST: rejected:attribute-assignment
# SANDBOX: failed
# WHY: the model's parameters are the engine's; unvalidated, the read-only model view refuses the assignment
# CATEGORY: parameter-integrity
import torch

from afr.recipe import FedAvg


class SetattrParameter(FedAvg):
    name = "model_setattr_parameter"

    def local_objective(self, task_loss, model, ctx):
        if ctx.step == 0:
            model.linear.weight = torch.nn.Parameter(torch.zeros(10, 60))
        return task_loss
