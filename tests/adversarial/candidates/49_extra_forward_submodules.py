# ruff: noqa
# ATTACK: extra forward passes through the model's submodules (model.children()), which the engine's
# ATTACK: forward pre-hook on the top-level model does not see
# MUST: rejected:forbidden-attribute
# WHY: the budget allows exactly one forward pass per local step, however the model is invoked
# CATEGORY: step-budget
import torch

from afr.recipe import FedAvg


class SubmoduleForward(FedAvg):
    name = "submodule_forward"

    def local_objective(self, task_loss, model, ctx):
        extra = 0.0
        for _ in range(20):
            for layer in model.children():
                extra = extra + layer(torch.randn(64, 60)).pow(2).mean()
        return task_loss + 1e-4 * extra
