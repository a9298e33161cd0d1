# ruff: noqa
# ATTACK: select a client index past the end (off-by-one) and a negative index (python wrap-around)
# MUST: contained:failed
# WHY: select_clients must return indices in 0..num_clients-1
# CATEGORY: selection
from afr.recipe import FedAvg


class OutOfRange(FedAvg):
    name = "out_of_range"

    def select_clients(self, round_idx, num_clients, rng):
        return [-1] + list(range(1, num_clients + 1))
