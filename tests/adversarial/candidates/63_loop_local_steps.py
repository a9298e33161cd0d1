# ruff: noqa
# ATTACK: an infinite loop in local_steps (hang the worker forever)
# MUST: contained:timeout
# WHY: the sandbox's CPU-time limit kills the child (the same on a loaded machine)
# CATEGORY: loops
from afr.recipe import FedAvg


class Hang(FedAvg):
    name = "hang"

    def local_steps(self, round_idx, client, max_steps):
        steps = max_steps
        while True:
            steps = (steps * 31 + 7) % 1000003
        return steps
