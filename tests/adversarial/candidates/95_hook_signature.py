# ruff: noqa
# ATTACK: hooks with *args/**kwargs or renamed/extra parameters (to receive whatever the engine might pass,
# ATTACK: e.g. a profile or data loader keyword)
# MUST: rejected:hook-signature
# WHY: a hook takes exactly the documented parameter names, in order
# CATEGORY: structure
from afr.recipe import FedAvg


class LooseHooks(FedAvg):
    name = "loose_hooks"

    def local_steps(self, *args, **kwargs):
        self.seen = kwargs
        return args[-1]

    def client_lr(self, round_idx, client, profile=None):
        return self.lr
