# ruff: noqa
# ATTACK: bypass the communication contract: clients stash their full local models (and the data-dependent
# ATTACK: last loss) on self during local training; the server reads them back in aggregate, uploading
# ATTACK: unbounded, uncounted extras
# MUST: rejected:attribute-assignment
# WHY: everything a client sends to the server must go through delta and contract-checked extras
# CATEGORY: communication
import torch

from afr.recipe import FedAvg


class SideChannel(FedAvg):
    name = "side_channel"

    def local_objective(self, task_loss, model, ctx):
        if not hasattr(self, "stash"):
            self.stash = {}
        self.stash[ctx.client] = [p.detach().clone() for p in model.parameters()] + [torch.randn(256, 256)]
        return task_loss

    def aggregate(self, global_params, updates, server_state):
        server_state["smuggled_tensors"] = sum(len(v) for v in self.stash.values())
        return super().aggregate(global_params, updates, server_state)
