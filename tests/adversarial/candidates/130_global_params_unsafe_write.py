# ruff: noqa
# ATTACK: an out-of-contract upload: at its last local step each client writes its trained weights into
# ATTACK: ctx.global_params through unsafe_chunk views (storage shared with the server's parameters, no
# ATTACK: version bump); aggregate returns global_params as it finds them, i.e. the last client's model
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: what the server sent is a private, read-only copy per client; uploads go through delta and extras only
# CATEGORY: communication
import torch

from afr.recipe import FedAvg


class GlobalUnsafeWrite(FedAvg):
    name = "global_params_unsafe_write"

    def local_objective(self, task_loss, model, ctx):
        if ctx.step == ctx.num_steps - 1:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    ctx.global_params[name].unsafe_chunk(1)[0].copy_(p)
        return task_loss

    def aggregate(self, global_params, updates, server_state):
        return {k: v.clone() for k, v in global_params.items()}
