# ruff: noqa
# ATTACK: build a bare nn.Module through an alias stored in a list
# MUST: rejected:constructor-alias
# WHY: nn.Module may only appear in annotations, isinstance() and comparisons
# CATEGORY: alias
import torch
from torch import nn

from afr.recipe import FedAvg


class Attack(FedAvg):
    name = "attack"

    def local_objective(self, task_loss, model, ctx):
        kinds = [nn.Module]
        extra = kinds[0]()
        return task_loss
