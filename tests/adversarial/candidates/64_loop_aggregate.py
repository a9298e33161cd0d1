# ruff: noqa
# ATTACK: a busy tensor loop in aggregate that never terminates (an "until converged" loop that cannot converge)
# MUST: contained:timeout
# WHY: the sandbox's CPU-time limit (and its wall-clock backstop) kills the child
# CATEGORY: loops
import torch

from afr.recipe import FedAvg, weighted_mean_delta


class NeverConverges(FedAvg):
    name = "never_converges"

    def aggregate(self, global_params, updates, server_state):
        delta = weighted_mean_delta(updates)
        step = 1.0
        while step > 0:
            step = float(torch.rand(())) + 0.5
        return {k: global_params[k] + self.server_lr * delta[k] for k in global_params}
