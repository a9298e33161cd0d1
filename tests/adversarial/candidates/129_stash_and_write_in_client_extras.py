# ruff: noqa
# ATTACK: stash the live parameters in client_state during local training, then write into them from
# ATTACK: client_extras (after the delta is taken): the next client starts from the edited model if the
# ATTACK: engine only guards local_objective
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: every hook is followed by the content check; the model belongs to the engine between steps
# CATEGORY: parameter-integrity
import torch

from afr.recipe import FedAvg


class StashWrite(FedAvg):
    name = "stash_and_write_in_client_extras"

    def local_objective(self, task_loss, model, ctx):
        ctx.client_state["live"] = list(model.parameters())
        return task_loss

    def client_extras(self, delta, ctx):
        with torch.no_grad():
            for p in ctx.client_state.get("live", []):
                p.unsafe_split(1)[0].zero_()
        return {}
