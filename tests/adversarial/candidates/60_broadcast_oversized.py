# ruff: noqa
# ATTACK: broadcast float64 copies of the global model plus a second "control" copy under every key: too many bytes down
# MUST: contained:failed
# WHY: the download extras are capped at 1x the parameter bytes
# CATEGORY: communication
import torch

from afr.recipe import FedAvg


class FatBroadcast(FedAvg):
    name = "fat_broadcast"

    def broadcast(self, round_idx, server_state):
        last = server_state.get("last")
        if last is None:
            return {}
        return {"control." + k: v.to(torch.float64) for k, v in last.items()}

    def aggregate(self, global_params, updates, server_state):
        new = super().aggregate(global_params, updates, server_state)
        server_state["last"] = new
        return new
