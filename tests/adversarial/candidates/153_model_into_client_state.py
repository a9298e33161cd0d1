# ruff: noqa
# ATTACK: keep the model in client_state and mutate it next round
# MUST: rejected:module-mutation
# WHY: storing a module in a container keeps it past the hook
# CATEGORY: parent-crash
import torch
from torch import nn

from afr.recipe import FedAvg


class Attack(FedAvg):
    name = "attack"

    def local_objective(self, task_loss, model, ctx):
        ctx.client_state["kept"] = [model]
        return task_loss
