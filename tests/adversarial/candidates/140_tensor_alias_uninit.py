# ruff: noqa
# ATTACK: bind torch.Tensor to a local name and call it: T(n) is uninitialised memory (freed test rows)
# MUST: rejected:constructor-alias
# WHY: classes that may not be called are checked by value: no alias may hold them
# CATEGORY: alias
import torch
from torch import nn

from afr.recipe import FedAvg


class Attack(FedAvg):
    name = "attack"

    def local_objective(self, task_loss, model, ctx):
        T = torch.Tensor
        leak = T(4096)
        return task_loss + 0.0 * leak.sum()
