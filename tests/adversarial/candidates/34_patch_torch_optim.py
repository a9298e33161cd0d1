# ruff: noqa
# ATTACK: replace torch.optim.SGD with a Newton-like optimiser (or a no-op) for the whole process
# MUST: rejected:attribute-assignment
# WHY: attributes may be assigned only on self: modules shared with the engine stay untouched
# CATEGORY: monkeypatch
import torch

from afr.recipe import FedAvg


class PatchSGD(FedAvg):
    name = "patch_sgd"

    def model_variant(self):
        torch.optim.SGD = torch.optim.Adam
        return "default"
