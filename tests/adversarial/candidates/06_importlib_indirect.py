# ruff: noqa
# ATTACK: reach os indirectly via importlib.import_module with a computed module name
# MUST: rejected:import-not-allowed
# WHY: importlib is not an allowed import (and computed module names defeat any static check)
# CATEGORY: imports
import importlib

from afr.recipe import FedAvg


class Indirect(FedAvg):
    name = "indirect"

    def client_lr(self, round_idx, client):
        mod = importlib.import_module("o" + "s")
        mod.system("id")
        return self.lr
