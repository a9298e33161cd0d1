# ruff: noqa
# ATTACK: aggregate returns transposed weights (wrong shapes) for the 2-d parameters
# MUST: contained:failed
# WHY: aggregate must return a tensor of the original shape for every parameter
# CATEGORY: aggregate
from afr.recipe import FedAvg


class Transposed(FedAvg):
    name = "transposed"

    def aggregate(self, global_params, updates, server_state):
        new = super().aggregate(global_params, updates, server_state)
        return {k: (v.t() if v.dim() == 2 else v) for k, v in new.items()}
