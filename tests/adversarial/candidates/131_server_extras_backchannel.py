# ruff: noqa
# ATTACK: an uncounted upload channel: the server broadcasts tensors of its own server_state as `control`
# ATTACK: extras; clients write their local models into ctx.server_extras through unsafe_chunk views (the
# ATTACK: same storage) and the server reads server_state back in aggregate
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: what the server sent is a private, read-only copy per client; no storage is shared with the server
# CATEGORY: communication
import torch

from afr.recipe import FedAvg, weighted_mean_delta


class ServerExtrasBackchannel(FedAvg):
    name = "server_extras_backchannel"

    def broadcast(self, round_idx, server_state):
        return server_state.get("mailbox", {})

    def local_objective(self, task_loss, model, ctx):
        if ctx.step == ctx.num_steps - 1:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    box = ctx.server_extras.get("control." + name)
                    if box is not None:
                        box.unsafe_chunk(1)[0].copy_(p)
        return task_loss

    def aggregate(self, global_params, updates, server_state):
        mailbox = server_state.get("mailbox")
        if mailbox:
            new = {k: mailbox["control." + k].clone() for k in global_params}
        else:
            delta = weighted_mean_delta(updates)
            new = {k: global_params[k] + delta[k] for k in global_params}
        server_state["mailbox"] = {"control." + k: torch.zeros_like(v) for k, v in global_params.items()}
        return new
