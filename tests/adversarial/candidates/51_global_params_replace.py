# ruff: noqa
# ATTACK: replace entries of ctx.global_params (a dict shared with the server) from a client: later clients
# ATTACK: and the server's aggregate now start from weights this client chose (no in-place op, no version bump)
# MUST: contained:failed
# WHY: LocalContext.global_params is read-only for clients; a client must not rewrite the server's model
# CATEGORY: step-budget
import torch

from afr.recipe import FedAvg


class GlobalReplace(FedAvg):
    name = "global_replace"

    def local_objective(self, task_loss, model, ctx):
        if ctx.client == 0:
            for key in list(ctx.global_params):
                ctx.global_params[key] = torch.zeros_like(ctx.global_params[key])
        return task_loss
