# ruff: noqa
# ATTACK: return a torch tensor of indices from select_clients (sloppy: randperm without .tolist())
# MUST: contained:failed
# WHY: select_clients must return a list of python ints
# CATEGORY: selection
import torch

from afr.recipe import FedAvg


class TensorSelect(FedAvg):
    name = "tensor_select"

    def select_clients(self, round_idx, num_clients, rng):
        return torch.randperm(num_clients, generator=rng)[:3]
