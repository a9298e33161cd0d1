# ruff: noqa
# ATTACK: take one more local step than the budget allows
# MUST: contained:failed
# WHY: the engine refuses local_steps outside 0..max_steps
# CATEGORY: step-budget
from afr.recipe import FedAvg


class OneMore(FedAvg):
    name = "one_more"

    def local_steps(self, round_idx, client, max_steps):
        return max_steps + 1
