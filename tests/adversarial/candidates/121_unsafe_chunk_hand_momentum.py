# ruff: noqa
# ATTACK: replace the client optimiser with hand-written heavy-ball momentum: recover each step's gradient
# ATTACK: from the parameter change (kept in client_state), then apply the momentum term in place through
# ATTACK: unsafe_chunk views (no version bump): an optimiser the budget does not grant
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: the client optimiser is the engine's plain SGD step; the engine compares the parameters by content
# CATEGORY: parameter-integrity
import torch

from afr.recipe import FedAvg


class HandMomentum(FedAvg):
    name = "hand_momentum"

    def local_objective(self, task_loss, model, ctx):
        state = ctx.client_state
        with torch.no_grad():
            for name, p in model.named_parameters():
                previous = state.get("prev." + name)
                velocity = state.get("v." + name, torch.zeros_like(p))
                if previous is not None and ctx.step > 0:
                    grad = (previous - p) / ctx.lr
                    velocity = 0.9 * velocity + grad
                    p.unsafe_chunk(1)[0].sub_(ctx.lr * 0.9 * velocity)
                state["v." + name] = velocity
                state["prev." + name] = p.clone()
        return task_loss
