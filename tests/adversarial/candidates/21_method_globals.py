# ruff: noqa
# ATTACK: walk from a bound hook to its function's __globals__ and grab the torch module / builtins
# MUST: rejected:forbidden-attribute
# WHY: __func__/__globals__ are dunder attributes: forbidden
# CATEGORY: introspection
from afr.recipe import FedAvg


class GlobalsWalk(FedAvg):
    name = "globals_walk"

    def client_lr(self, round_idx, client):
        g = self.aggregate.__func__.__globals__
        opener = g["__builtins__"]["open"]
        opener("/tmp/afr_adversarial_canary/pwned", "w").write("x")
        return self.lr
