# ruff: noqa
# ATTACK: unbounded recursion in a helper (blow the C stack / crash the worker)
# MUST: contained:failed|crashed
# WHY: Python's recursion limit turns it into a RecursionError (failed); a stack overflow would be a crash
# CATEGORY: loops
from afr.recipe import FedAvg


def _deeper(n):
    return _deeper(n + 1) + 1


class Recursion(FedAvg):
    name = "recursion"

    def client_lr(self, round_idx, client):
        return self.lr + 0.0 * _deeper(0)
