# ruff: noqa
# ATTACK: reach torch.Generator() by passing the class to map()
# MUST: rejected:constructor-alias
# WHY: passing the class on lets a builtin call it
# CATEGORY: alias
import torch
from torch import nn

from afr.recipe import FedAvg


class Attack(FedAvg):
    name = "attack"

    def local_objective(self, task_loss, model, ctx):
        gens = list(map(torch.Generator, ["cpu"]))
        return task_loss
