# ruff: noqa
# ATTACK: return torch.device from a helper and call it with 'meta'
# MUST: rejected:constructor-alias
# WHY: returning the class is an alias too
# CATEGORY: alias
import torch
from torch import nn

from afr.recipe import FedAvg


class Attack(FedAvg):
    name = "attack"

    def kind(self):
        return torch.device

    def local_objective(self, task_loss, model, ctx):
        where = self.kind()("meta")
        return task_loss
