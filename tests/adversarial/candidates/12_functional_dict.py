# ruff: noqa
# ATTACK: alias torch.nn.functional as F and pull arbitrary objects out of F.__dict__ (e.g. its torch/os globals)
# MUST: rejected:forbidden-attribute
# WHY: dunder attributes (__dict__) reach interpreter internals and are forbidden on any object
# CATEGORY: imports
import torch.nn.functional as F

from afr.recipe import FedAvg


class DictWalk(FedAvg):
    name = "dict_walk"

    def local_objective(self, task_loss, model, ctx):
        namespace = F.__dict__
        torch_module = namespace["torch"]
        torch_module.manual_seed(0)
        return task_loss
