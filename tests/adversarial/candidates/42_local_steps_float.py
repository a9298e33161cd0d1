# ruff: noqa
# ATTACK: return a float step count (e.g. 5.9) hoping the engine rounds up or range() misbehaves
# MUST: contained:failed
# WHY: local_steps must be an int in 0..max_steps
# CATEGORY: step-budget
from afr.recipe import FedAvg


class FloatSteps(FedAvg):
    name = "float_steps"

    def local_steps(self, round_idx, client, max_steps):
        return max_steps + 0.9
