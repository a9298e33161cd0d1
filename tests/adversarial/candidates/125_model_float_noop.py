# ruff: noqa
# ATTACK: model.float() on a float32 model looks harmless (values unchanged), but it runs the module-wide
# ATTACK: conversion path that rebinds parameter storage; a refusal must not depend on the current dtype
# MUST: contained:failed
# WHY: module methods that change dtype, device or storage are refused by name (an allow-list of module methods)
# CATEGORY: parameter-integrity
from afr.recipe import FedAvg


class ModelFloat(FedAvg):
    name = "model_float"

    def local_objective(self, task_loss, model, ctx):
        model.float()
        return task_loss
