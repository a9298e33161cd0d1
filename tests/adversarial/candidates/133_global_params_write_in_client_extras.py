# ruff: noqa
# ATTACK: the out-of-contract upload of 130 from client_extras instead of local_objective: global + delta
# ATTACK: written into ctx.global_params through unsafe_chunk views after local training
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: what the server sent stays read-only in every client hook, not only during local steps
# CATEGORY: communication
import torch

from afr.recipe import FedAvg


class GlobalWriteExtras(FedAvg):
    name = "global_params_write_in_client_extras"

    def client_extras(self, delta, ctx):
        with torch.no_grad():
            for name, value in ctx.global_params.items():
                value.unsafe_chunk(1)[0].add_(delta[name])
        return {}

    def aggregate(self, global_params, updates, server_state):
        return {k: v.clone() for k, v in global_params.items()}
