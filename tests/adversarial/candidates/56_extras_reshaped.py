# ruff: noqa
# ATTACK: upload a reshaped (flattened and concatenated) tensor under a parameter's key to smuggle more data
# MUST: contained:failed
# WHY: an extra must be shaped exactly like the parameter it names
# CATEGORY: communication
import torch

from afr.recipe import FedAvg


class Reshaped(FedAvg):
    name = "reshaped"

    def client_extras(self, delta, ctx):
        flat = torch.cat([v.flatten() for v in delta.values()])
        first = sorted(delta)[0]
        return {"control." + first: flat}
