# ruff: noqa
# ATTACK: a helper method appends to the module it is given
# MUST: rejected:module-mutation
# WHY: helpers given the model are tainted at that parameter
# CATEGORY: parent-crash
import torch
from torch import nn

from afr.recipe import FedAvg


class Attack(FedAvg):
    name = "attack"

    def grow(self, net):
        net.append(net[-1])
        return 0.0

    def local_objective(self, task_loss, model, ctx):
        return task_loss + self.grow(model)
