# ruff: noqa
# ATTACK: a huge client learning rate (1e38: a finite float, but the weights overflow to inf and the loss to NaN)
# MUST: contained:failed
# WHY: the engine fails a run on a non-finite loss or non-finite aggregated weights
# CATEGORY: nan-inf
from afr.recipe import FedAvg


class HugeLR(FedAvg):
    name = "huge_lr"

    def client_lr(self, round_idx, client):
        return 1e38
