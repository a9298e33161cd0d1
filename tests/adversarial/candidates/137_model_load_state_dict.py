# ruff: noqa
# ATTACK: model.load_state_dict(...) overwrites the live parameters with values of the candidate's choice
# ATTACK: (here: ten times the global parameters) between the engine's optimiser steps
# MUST: rejected:forbidden-attribute
# SANDBOX: failed
# WHY: only the engine's optimiser step may change the parameters; unvalidated, the model view refuses it
# CATEGORY: parameter-integrity
from afr.recipe import FedAvg


class LoadStateDict(FedAvg):
    name = "model_load_state_dict"

    def local_objective(self, task_loss, model, ctx):
        model.load_state_dict({k: 10 * v for k, v in ctx.global_params.items()})
        return task_loss
