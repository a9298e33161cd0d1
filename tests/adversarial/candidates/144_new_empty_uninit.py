# ruff: noqa
# ATTACK: allocate with Tensor.new_empty: uninitialised bytes
# MUST: rejected:forbidden-attribute
# WHY: uninitialised allocations may hold freed data
# CATEGORY: alias
import torch
from torch import nn

from afr.recipe import FedAvg


class Attack(FedAvg):
    name = "attack"

    def local_objective(self, task_loss, model, ctx):
        leak = task_loss.new_empty(100000)
        return task_loss + 0.0 * leak.sum()
