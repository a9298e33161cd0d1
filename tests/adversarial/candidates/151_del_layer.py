# ruff: noqa
# ATTACK: delete a layer of the model with del model[i]
# MUST: rejected:module-mutation
# WHY: item deletion of modules falls under attribute assignment
# CATEGORY: parent-crash
import torch
from torch import nn

from afr.recipe import FedAvg


class Attack(FedAvg):
    name = "attack"

    def local_objective(self, task_loss, model, ctx):
        if len(model) > 2:
            del model[1]
        return task_loss
