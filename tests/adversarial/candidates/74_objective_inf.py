# ruff: noqa
# ATTACK: local_objective returns +inf (e.g. log(0) in a hand-written regulariser)
# MUST: contained:failed
# WHY: a non-finite loss fails the run
# CATEGORY: nan-inf
import math

import torch

from afr.recipe import FedAvg


class InfObjective(FedAvg):
    name = "inf_objective"

    def local_objective(self, task_loss, model, ctx):
        return task_loss - torch.log(torch.zeros(())) + 0.0 * math.pi
