# ruff: noqa
# ATTACK: replace torch.Tensor.add_ (used by weighted_mean_delta) to scale every client delta by 10
# MUST: rejected:attribute-assignment
# WHY: attributes may be assigned only on self; torch.Tensor is shared with the engine
# CATEGORY: monkeypatch
import torch

from afr.recipe import FedAvg


class PatchTensor(FedAvg):
    name = "patch_tensor"

    def select_clients(self, round_idx, num_clients, rng):
        torch.Tensor.add_ = torch.Tensor.mul_
        return list(range(num_clients))
