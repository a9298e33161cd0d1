# ruff: noqa
# ATTACK: edit model parameters in place through a numpy view (p.detach().numpy() shares storage but not the
# ATTACK: version counter), e.g. an extra hand-made update per step that the engine's version check cannot see
# MUST: rejected:forbidden-attribute
# WHY: only the engine's optimizer step may change model parameters
# CATEGORY: step-budget
import torch

from afr.recipe import FedAvg


class NumpyView(FedAvg):
    name = "numpy_view"

    def local_objective(self, task_loss, model, ctx):
        for p in model.parameters():
            view = p.detach().numpy()
            view *= 0.9
        return task_loss
