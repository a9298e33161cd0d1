# ruff: noqa
# ATTACK: a class decorator that replaces the recipe class after creation
# MUST: rejected:class-decorator
# WHY: recipe classes take no decorators
# CATEGORY: structure
from afr.recipe import FedAvg, scalar


@scalar
class Decorated(FedAvg):
    name = "decorated"
