# ruff: noqa
# ATTACK: modify ctx.global_params in place from a client (move the server model towards this client's weights)
# MUST: contained:failed
# WHY: in-place edits of the global parameters bump their version counters; the engine fails the run
# CATEGORY: step-budget
import torch

from afr.recipe import FedAvg


class GlobalInplace(FedAvg):
    name = "global_inplace"

    def local_objective(self, task_loss, model, ctx):
        with torch.no_grad():
            for key, value in ctx.global_params.items():
                value.mul_(0.5)
        return task_loss
