# ruff: noqa
# ATTACK: setattr with a literal name to replace a hook (hoping literal setattr is trusted blindly)
# MUST: rejected:attribute-assignment
# WHY: setattr with a literal is checked like an assignment: hooks may not be replaced at run time
# CATEGORY: monkeypatch
from afr.recipe import FedAvg


class SetattrHook(FedAvg):
    name = "setattr_hook"

    def select_clients(self, round_idx, num_clients, rng):
        setattr(self, "aggregate", lambda g, u, s: g)
        setattr(self, "server_lr", 100.0)
        return list(range(num_clients))
