# ruff: noqa
# ATTACK: aggregate returns NaN weights on the last round (the curve of earlier rounds looked fine)
# MUST: contained:failed
# WHY: the engine checks the aggregated weights are finite
# CATEGORY: nan-inf
import torch

from afr.recipe import FedAvg


class NanAggregate(FedAvg):
    name = "nan_aggregate"

    def aggregate(self, global_params, updates, server_state):
        new = super().aggregate(global_params, updates, server_state)
        server_state["rounds"] = server_state.get("rounds", 0) + 1
        if server_state["rounds"] >= 2:
            return {k: v * torch.nan for k, v in new.items()}
        return new
