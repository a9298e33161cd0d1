# ruff: noqa
# ATTACK: allocate a 400 GB tensor inside aggregate (exhaust the machine's memory)
# MUST: contained:memory
# WHY: the child's address-space limit makes the allocation fail; the run ends with status memory
# CATEGORY: memory
import torch

from afr.recipe import FedAvg


class HugeTensor(FedAvg):
    name = "huge_tensor"

    def aggregate(self, global_params, updates, server_state):
        server_state["buffer"] = torch.zeros(10**11)
        return super().aggregate(global_params, updates, server_state)
