# ruff: noqa
# ATTACK: model.state_dict() hands out detached tensors sharing the parameters' storage; scale them in place
# ATTACK: through unsafe_chunk views (a hidden weight decay of 10 % per step)
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: only the engine's optimiser step may change the parameters, however the storage is reached
# CATEGORY: parameter-integrity
import torch

from afr.recipe import FedAvg


class StateDictView(FedAvg):
    name = "state_dict_unsafe_view"

    def local_objective(self, task_loss, model, ctx):
        with torch.no_grad():
            for value in model.state_dict().values():
                value.unsafe_chunk(1)[0].mul_(0.9)
        return task_loss
