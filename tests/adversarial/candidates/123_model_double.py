# ruff: noqa
# ATTACK: model.double() inside the local objective: parameters change dtype (and storage) under the
# ATTACK: engine's optimiser, which then steps float64 tensors it never allocated
# MUST: contained:failed
# WHY: module methods that change dtype, device or storage are refused
# CATEGORY: parameter-integrity
from afr.recipe import FedAvg


class ModelDouble(FedAvg):
    name = "model_double"

    def local_objective(self, task_loss, model, ctx):
        model.double()
        return task_loss
