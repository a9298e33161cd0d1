# ruff: noqa
# ATTACK: a module-level helper with `while True` (hidden from a reader of the hooks) called from select_clients
# MUST: contained:timeout
# WHY: the sandbox's CPU-time limit kills the child wherever the loop hides
# CATEGORY: loops
from afr.recipe import FedAvg


def _spin(n):
    total = 0
    while True:
        total += n
        if total < 0:
            break
    return total


class HelperSpin(FedAvg):
    name = "helper_spin"

    def select_clients(self, round_idx, num_clients, rng):
        _spin(num_clients)
        return list(range(num_clients))
