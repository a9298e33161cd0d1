# ruff: noqa
# ATTACK: upload an extra of a kind the contract does not declare (per-client "stats" alongside the delta)
# MUST: contained:failed
# WHY: only the contract's declared extra kinds may travel
# CATEGORY: communication
from afr.recipe import FedAvg


class UndeclaredKind(FedAvg):
    name = "undeclared_kind"

    def client_extras(self, delta, ctx):
        return {"stats." + k: v.abs() for k, v in delta.items()}
