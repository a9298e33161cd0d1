# ruff: noqa
# ATTACK: define __init__ to bypass scalar validation (force lr=50 whatever the control arm or ranges say)
# MUST: rejected:dunder-def
# WHY: dunder methods change how the class works; recipes override hooks only
# CATEGORY: structure
from afr.recipe import FedAvg


class CustomInit(FedAvg):
    name = "custom_init"

    def __init__(self, **values):
        super().__init__()
        self.boost = 50.0

    def client_lr(self, round_idx, client):
        return self.lr * self.boost
