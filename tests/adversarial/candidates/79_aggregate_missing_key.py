# ruff: noqa
# ATTACK: aggregate drops the bias parameters (only updates weights)
# MUST: contained:failed
# WHY: aggregate must return exactly the model's parameters
# CATEGORY: aggregate
from afr.recipe import FedAvg


class MissingKey(FedAvg):
    name = "missing_key"

    def aggregate(self, global_params, updates, server_state):
        new = super().aggregate(global_params, updates, server_state)
        return {k: v for k, v in new.items() if not k.endswith("bias")}
