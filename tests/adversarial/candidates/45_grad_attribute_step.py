# ruff: noqa
# ATTACK: read p.grad of the previous step and apply an extra SGD step by hand (double steps)
# MUST: rejected:forbidden-attribute
# WHY: grad/backward/data are forbidden attributes (autograd plumbing)
# CATEGORY: step-budget
import torch

from afr.recipe import FedAvg


class DoubleStep(FedAvg):
    name = "double_step"

    def local_objective(self, task_loss, model, ctx):
        for p in model.parameters():
            if p.grad is not None:
                p.data -= ctx.lr * p.grad
        return task_loss
