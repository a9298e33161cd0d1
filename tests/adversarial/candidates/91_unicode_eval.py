# ruff: noqa
# ATTACK: fullwidth look-alike letters: Python folds `ｅｖａｌ` to `eval` (NFKC), a naive name check does not
# MUST: rejected:non-ascii-name
# WHY: identifiers must be ASCII
# CATEGORY: encoding-size
from afr.recipe import FedAvg


class LookAlike(FedAvg):
    name = "look_alike"

    def client_lr(self, round_idx, client):
        return ｅｖａｌ("self.lr * 100")
