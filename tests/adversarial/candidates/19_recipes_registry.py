# ruff: noqa
# ATTACK: import the engine's recipe registry and swap the control arm's baseline for a sabotaged one
# MUST: rejected:import-name-not-allowed
# WHY: RECIPES is the engine's mutable registry and is excluded from the importable names
# CATEGORY: accountant
from afr.recipe import RECIPES, FedAvg


class Saboteur(FedAvg):
    name = "saboteur"

    def model_variant(self):
        RECIPES["fedavg"] = Saboteur
        return "default"
