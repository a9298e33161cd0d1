# ruff: noqa
# ATTACK: a recipe class that does not derive from FedAvg (a bare torch Module posing as a recipe)
# MUST: rejected:class-base
# WHY: a class has exactly one base: a recipe base from afr.recipe or an earlier class of the file
# CATEGORY: structure
import torch

from afr.recipe import FedAvg


class Impostor(torch.nn.Module):
    name = "impostor"

    def aggregate(self, global_params, updates, server_state):
        return global_params


class Mixed(FedAvg, Impostor):
    name = "mixed"
