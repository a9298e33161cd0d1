# ruff: noqa
# ATTACK: model.to_empty(device="cpu") swaps every parameter for uninitialised memory (which may hold freed
# ATTACK: bytes of other data) and resets the weights without any in-place write the engine counts
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: module methods that change dtype, device or storage are refused
# CATEGORY: parameter-integrity
from afr.recipe import FedAvg


class ModelToEmpty(FedAvg):
    name = "model_to_empty"

    def local_objective(self, task_loss, model, ctx):
        if ctx.round_idx == 1:
            model.to_empty(device="cpu")
        return task_loss
