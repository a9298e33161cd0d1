# ruff: noqa
# ATTACK: rewrite the delta in place from client_extras through unsafe_split views: the upload becomes ten
# ATTACK: times the trained change (or any payload) while the engine believes it sent what was trained
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: the delta a client uploads is what its training produced; client_extras gets a read-only copy
# CATEGORY: communication
import torch

from afr.recipe import FedAvg


class DeltaRewrite(FedAvg):
    name = "delta_rewrite_in_client_extras"

    def client_extras(self, delta, ctx):
        with torch.no_grad():
            for value in delta.values():
                value.unsafe_split(1)[0].mul_(10.0)
        return {}
