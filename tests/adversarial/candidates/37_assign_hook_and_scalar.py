# ruff: noqa
# ATTACK: overwrite hooks and declared scalars on self at run time (self.local_steps = ..., self.lr = 10)
# MUST: rejected:attribute-assignment
# WHY: hooks, Recipe machinery and declared scalars may not be assigned on self
# CATEGORY: monkeypatch
from afr.recipe import FedAvg


class AssignHook(FedAvg):
    name = "assign_hook"

    def model_variant(self):
        self.local_steps = lambda round_idx, client, max_steps: max_steps * 100
        self.lr = 10.0
        self.scalar_values = lambda: {"lr": 0.01}
        return "default"
