# ruff: noqa
# ATTACK: a NaN learning rate (NaN compares False with everything, so naive `lr < 0` checks let it through)
# MUST: contained:failed
# WHY: client_lr must be finite and >= 0
# CATEGORY: nan-inf
from afr.recipe import FedAvg


class NanLR(FedAvg):
    name = "nan_lr"

    def client_lr(self, round_idx, client):
        return float("nan")
