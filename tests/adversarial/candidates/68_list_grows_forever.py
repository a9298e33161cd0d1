# ruff: noqa
# ATTACK: a list that grows forever (memory leak by design) inside local_steps
# MUST: contained:memory
# WHY: the child's address-space limit raises MemoryError long before the machine runs out
# CATEGORY: memory
from afr.recipe import FedAvg


class Leak(FedAvg):
    name = "leak"

    def local_steps(self, round_idx, client, max_steps):
        hoard = []
        while True:
            hoard.append([client] * 10**7)
        return max_steps
