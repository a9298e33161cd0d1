# ruff: noqa
# ATTACK: aggregate mutates server_state and forgets to return (returns None)
# MUST: contained:failed
# WHY: aggregate must return a dict of parameters
# CATEGORY: aggregate
from afr.recipe import FedAvg


class NoReturn(FedAvg):
    name = "no_return"

    def aggregate(self, global_params, updates, server_state):
        server_state["last"] = super().aggregate(global_params, updates, server_state)
