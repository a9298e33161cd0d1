# ruff: noqa
# ATTACK: run an inner optimisation loop inside local_objective with torch.autograd.grad and in-place updates
# MUST: rejected:call-not-allowed
# WHY: torch.autograd.grad is not an allowed call: each local step is one engine-driven gradient step
# CATEGORY: step-budget
import torch

from afr.recipe import FedAvg


class InnerLoop(FedAvg):
    name = "inner_loop"

    def local_objective(self, task_loss, model, ctx):
        params = list(model.parameters())
        for _ in range(10):
            grads = torch.autograd.grad(task_loss, params, retain_graph=True)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p.sub_(ctx.lr * g)
        return task_loss
