# ruff: noqa
# ATTACK: kill the training child with os._exit(0) mid-run (no result, maybe a free 'pass')
# MUST: rejected:import-not-allowed,forbidden-attribute
# WHY: os is not importable and _exit is private; unvalidated, the child exits without a result and is reported crashed
# CATEGORY: imports
# SANDBOX: crashed
import os

from afr.recipe import FedAvg


class Quitter(FedAvg):
    name = "quitter"

    def aggregate(self, global_params, updates, server_state):
        os._exit(0)
