# ruff: noqa
# ATTACK: add 1000 to every model parameter at every local step through unsafe_split views: they share the
# ATTACK: parameters' storage but keep their own version counter, so a version-counter check sees nothing
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: the validator refuses unsafe_* views by name; unvalidated, only the engine's optimiser step may change the parameters; the engine compares their content after every hook
# CATEGORY: parameter-integrity
import torch

from afr.recipe import FedAvg


class UnsafeSplitPlus1000(FedAvg):
    name = "unsafe_split_plus_1000"

    def local_objective(self, task_loss, model, ctx):
        with torch.no_grad():
            for p in model.parameters():
                for piece in p.unsafe_split(1):
                    piece.add_(1000.0)
        return task_loss
