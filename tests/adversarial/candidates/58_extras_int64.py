# ruff: noqa
# ATTACK: upload int64 tensors (e.g. raw labels or indices of this client's data) as control extras
# MUST: contained:failed
# WHY: extras must have a float dtype
# CATEGORY: communication
import torch

from afr.recipe import FedAvg


class IntExtras(FedAvg):
    name = "int_extras"

    def client_extras(self, delta, ctx):
        return {"control." + k: torch.zeros(v.shape, dtype=torch.int64) for k, v in delta.items()}
