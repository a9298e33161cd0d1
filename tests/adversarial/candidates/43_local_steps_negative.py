# ruff: noqa
# ATTACK: a negative step count (hoping for an unsigned wrap-around or a budget refund)
# MUST: contained:failed
# WHY: local_steps must be an int in 0..max_steps
# CATEGORY: step-budget
from afr.recipe import FedAvg


class NegativeSteps(FedAvg):
    name = "negative_steps"

    def local_steps(self, round_idx, client, max_steps):
        return -max_steps
