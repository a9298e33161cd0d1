# ruff: noqa
# ATTACK: build a 10 GB string inside a hook
# MUST: contained:memory
# WHY: the child's address-space limit makes the allocation raise MemoryError
# CATEGORY: memory
from afr.recipe import FedAvg


class StringBomb(FedAvg):
    name = "string_bomb"

    def model_variant(self):
        blob = "x" * 10**10
        return "default" if blob else "mlp"
