# ruff: noqa
# ATTACK: model.apply(fn) runs the candidate's function on every submodule, which rescales each layer's
# ATTACK: weights through unsafe_chunk views (no version bump)
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: module.apply is refused by the validator; unvalidated, the read-only model view refuses it too
# CATEGORY: parameter-integrity
import torch

from afr.recipe import FedAvg


def shrink(module):
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            p.unsafe_chunk(1)[0].mul_(0.5)


class ApplyInplace(FedAvg):
    name = "model_apply_inplace"

    def local_objective(self, task_loss, model, ctx):
        model.apply(shrink)
        return task_loss
