# ruff: noqa
# ATTACK: disable autograd around a hook (@torch.no_grad() decorator, `with torch.inference_mode()`) so the
# ATTACK: engine's backward sees a detached loss
# MUST: rejected:decorator,with-not-allowed
# WHY: only @staticmethod is allowed as a decorator and `with` only on torch.no_grad()/enable_grad()
# CATEGORY: structure
import torch

from afr.recipe import FedAvg


class GradMode(FedAvg):
    name = "grad_mode"

    @torch.no_grad()
    def local_objective(self, task_loss, model, ctx):
        with torch.inference_mode():
            return task_loss * 1.0
