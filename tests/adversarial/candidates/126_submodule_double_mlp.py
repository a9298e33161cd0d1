# ruff: noqa
# ATTACK: convert one submodule of the MLP variant to float64 and back (model.net[0].double().float()):
# ATTACK: the conversion reached through container indexing instead of the model itself
# MUST: contained:failed
# WHY: submodules reached by attribute or index are read-only views too; dtype/storage changes are refused
# CATEGORY: parameter-integrity
from afr.recipe import FedAvg


class SubmoduleDouble(FedAvg):
    name = "submodule_double_mlp"

    def model_variant(self):
        return "mlp"

    def local_objective(self, task_loss, model, ctx):
        model.net[0].double()
        model.net[0].float()
        return task_loss
