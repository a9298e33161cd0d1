# ruff: noqa
# ATTACK: select the best client five times (duplicates double-count its data and steps)
# MUST: contained:failed
# WHY: a client may be selected at most once per round
# CATEGORY: selection
from afr.recipe import FedAvg


class Duplicates(FedAvg):
    name = "duplicates"

    def select_clients(self, round_idx, num_clients, rng):
        return [0, 0, 0, 0, 0, 1]
