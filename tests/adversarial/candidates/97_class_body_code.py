# ruff: noqa
# ATTACK: logic in the class body (a loop that runs on import) and a nested helper class built inside a hook
# MUST: rejected:class-statement,nested-class
# WHY: a class body holds only names, scalar declarations, literal constants and methods; classes only at module level
# CATEGORY: structure
from afr.recipe import FedAvg


class BodyCode(FedAvg):
    name = "body_code"
    table = {}
    for i in range(10**8):
        table[i] = i * i

    def aggregate(self, global_params, updates, server_state):
        class Holder(FedAvg):
            name = "holder"

        server_state["holder"] = Holder
        return super().aggregate(global_params, updates, server_state)
