# ruff: noqa
# ATTACK: model.requires_grad_(False) freezes every parameter from inside the local objective (a local step
# ATTACK: then costs a forward pass but trains nothing: a different optimiser than the engine's)
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: requires_grad_ is autograd plumbing; unvalidated, the read-only model view refuses it
# CATEGORY: parameter-integrity
from afr.recipe import FedAvg


class RequiresGradOff(FedAvg):
    name = "model_requires_grad_off"

    def local_objective(self, task_loss, model, ctx):
        model.requires_grad_(False)
        return task_loss
