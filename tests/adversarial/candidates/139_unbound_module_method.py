# ruff: noqa
# ATTACK: reach the module-wide conversion through the class instead of the model: keep torch.nn.Module in a
# ATTACK: local name and call its unbound half()/float() on the model (a by-name validator sees no model.half)
# MUST: rejected:constructor-alias
# SANDBOX: failed
# WHY: the model a recipe receives is a read-only view, whatever function it is handed to; conversions are refused
# CATEGORY: parameter-integrity
import torch

from afr.recipe import FedAvg


class UnboundModuleMethod(FedAvg):
    name = "unbound_module_method"

    def local_objective(self, task_loss, model, ctx):
        module_class = torch.nn.Module
        module_class.half(model)
        module_class.float(model)
        return task_loss
