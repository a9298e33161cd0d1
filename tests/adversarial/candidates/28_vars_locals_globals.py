# ruff: noqa
# ATTACK: vars(self) / globals() / locals() to read and rewrite namespaces (e.g. the recipe's scalar table)
# MUST: rejected:forbidden-name
# WHY: vars, globals and locals are forbidden builtins
# CATEGORY: introspection
from afr.recipe import FedAvg


class Namespaces(FedAvg):
    name = "namespaces"

    def client_lr(self, round_idx, client):
        state = vars(self)
        state["lr"] = 10.0
        module = globals()
        here = locals()
        return module.get("BOOST", 1.0) * here["self"].lr
