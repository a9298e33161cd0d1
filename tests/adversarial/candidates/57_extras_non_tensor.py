# ruff: noqa
# ATTACK: upload python lists (not tensors) as extras, hoping the byte accounting only counts tensors
# MUST: contained:failed
# WHY: extras must be float tensors shaped like a parameter
# CATEGORY: communication
from afr.recipe import FedAvg


class ListExtras(FedAvg):
    name = "list_extras"

    def client_extras(self, delta, ctx):
        return {"control." + k: v.tolist() for k, v in delta.items()}
