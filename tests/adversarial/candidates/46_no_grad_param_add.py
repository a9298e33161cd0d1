# ruff: noqa
# ATTACK: under torch.no_grad(), push model parameters in place (p.add_) inside local_objective: free extra steps
# MUST: contained:failed
# WHY: in-place edits of model parameters bump their version counters; the engine detects and fails the run
# CATEGORY: step-budget
import torch

from afr.recipe import FedAvg


class NoGradPush(FedAvg):
    name = "no_grad_push"

    def local_objective(self, task_loss, model, ctx):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p), alpha=1e-3)
        return task_loss
