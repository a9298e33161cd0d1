# ruff: noqa
# ATTACK: swallow everything, including the sandbox's interrupts, with bare except and except BaseException
# MUST: rejected:bare-except,reference-not-allowed
# WHY: a bare except (and BaseException) would swallow the sandbox's interrupts; catch specific exceptions
# CATEGORY: structure
from afr.recipe import FedAvg


class Unkillable(FedAvg):
    name = "unkillable"

    def local_steps(self, round_idx, client, max_steps):
        try:
            return max_steps
        except:
            return max_steps

    def client_lr(self, round_idx, client):
        try:
            return self.lr
        except BaseException:
            return self.lr
