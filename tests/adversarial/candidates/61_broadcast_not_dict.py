# ruff: noqa
# ATTACK: broadcast a list of tensors instead of a dict (no keys to check against the contract)
# MUST: contained:failed
# WHY: download extras must be a dict keyed <kind>.<parameter>
# CATEGORY: communication
import torch

from afr.recipe import FedAvg


class ListBroadcast(FedAvg):
    name = "list_broadcast"

    def broadcast(self, round_idx, server_state):
        return [torch.zeros(10**5) for _ in range(10)]
