# ruff: noqa
# ATTACK: replace a layer through an alias of the model (layers = model; layers[0] = ...)
# MUST: rejected:module-mutation
# WHY: the taint follows aliases of the model
# CATEGORY: parent-crash
import torch
from torch import nn

from afr.recipe import FedAvg


class Attack(FedAvg):
    name = "attack"

    def local_objective(self, task_loss, model, ctx):
        layers = model.train()
        layers[0] = layers[-1]
        return task_loss
