# ruff: noqa
# ATTACK: alias torch.nn.functional as F and replace F.cross_entropy so the validation metric/loss lie
# MUST: rejected:attribute-assignment
# WHY: attributes may be assigned only on self; F is a module shared with the engine and the profile
# CATEGORY: monkeypatch
import torch
import torch.nn.functional as F

from afr.recipe import FedAvg


class PatchLoss(FedAvg):
    name = "patch_loss"

    def model_variant(self):
        F.cross_entropy = lambda outputs, targets: torch.zeros(())
        return "default"
