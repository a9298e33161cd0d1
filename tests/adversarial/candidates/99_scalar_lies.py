# ruff: noqa
# ATTACK: lie about scalars: override scalar_values (the ledger reports a tame lr) and declare a scalar whose
# ATTACK: default lies outside its own range (an lr of 50 sneaking past the control arm's search space)
# MUST: rejected:reserved-name,scalar-declaration
# WHY: Recipe machinery may not be redefined and a scalar needs low <= default <= high
# CATEGORY: structure
from afr.recipe import FedAvg, scalar


class ScalarLies(FedAvg):
    name = "scalar_lies"

    boost = scalar(50.0, 0.1, 1.0)

    def scalar_values(self):
        return {"lr": 0.01, "server_lr": 1.0, "boost": 1.0}

    def client_lr(self, round_idx, client):
        return self.lr * self.boost
