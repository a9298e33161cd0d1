# ruff: noqa
# ATTACK: extra forward passes in local_objective (model(...) on perturbed inputs) to squeeze more compute per step
# MUST: contained:failed
# WHY: the engine counts forward passes and allows exactly one per local step
# CATEGORY: step-budget
import torch

from afr.recipe import FedAvg


class ExtraForward(FedAvg):
    name = "extra_forward"

    def local_objective(self, task_loss, model, ctx):
        probe = model(torch.randn(8, 60))
        return task_loss + 1e-3 * probe.pow(2).mean()
