# ruff: noqa
# ATTACK: model.half() then model.float(): the module-wide conversion swaps every parameter's storage
# ATTACK: (rounding it to float16) without bumping any version counter the engine had recorded
# MUST: contained:failed
# WHY: module methods that change dtype, device or storage are refused; only the optimiser step changes parameters
# CATEGORY: parameter-integrity
from afr.recipe import FedAvg


class HalfRoundTrip(FedAvg):
    name = "half_roundtrip"

    def local_objective(self, task_loss, model, ctx):
        if ctx.step == 0:
            model.half()
            model.float()
        return task_loss
