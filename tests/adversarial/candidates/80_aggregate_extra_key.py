# ruff: noqa
# ATTACK: aggregate smuggles an extra entry (a big buffer) into the global parameters
# MUST: contained:failed
# WHY: aggregate must return exactly the model's parameters, nothing more
# CATEGORY: aggregate
import torch

from afr.recipe import FedAvg


class ExtraKey(FedAvg):
    name = "extra_key"

    def aggregate(self, global_params, updates, server_state):
        new = super().aggregate(global_params, updates, server_state)
        new["hidden.memory"] = torch.zeros(1000, 1000)
        return new
