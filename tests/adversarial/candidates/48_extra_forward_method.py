# ruff: noqa
# ATTACK: extra forward passes that dodge the engine's counter: call model.forward(...) directly (no __call__,
# ATTACK: so no forward pre-hook fires)
# MUST: rejected:forbidden-attribute
# WHY: the budget allows exactly one forward pass per local step, however the model is invoked
# CATEGORY: step-budget
import torch

from afr.recipe import FedAvg


class HiddenForward(FedAvg):
    name = "hidden_forward"

    def local_objective(self, task_loss, model, ctx):
        extra = 0.0
        for _ in range(20):
            extra = extra + model.forward(torch.randn(64, 60)).pow(2).mean()
        return task_loss + 1e-4 * extra
