# ruff: noqa
# ATTACK: insert a layer into the model (state-dict keys shift, finals crashed)
# MUST: rejected:module-mutation
# WHY: sequence mutation of modules falls under attribute assignment
# CATEGORY: parent-crash
import torch
from torch import nn

from afr.recipe import FedAvg


class Attack(FedAvg):
    name = "attack"

    def local_objective(self, task_loss, model, ctx):
        if ctx.step == 0 and ctx.round_idx == 0:
            model.insert(0, model[0])
        return task_loss
