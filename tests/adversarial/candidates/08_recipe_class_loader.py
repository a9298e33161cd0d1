# ruff: noqa
# ATTACK: use afr.recipe.recipe_class to load and execute an arbitrary .py file by path
# MUST: rejected:import-name-not-allowed
# WHY: recipe_class is deliberately excluded from the importable names of afr.recipe
# CATEGORY: imports
from afr.recipe import FedAvg, recipe_class


class Loader(FedAvg):
    name = "loader"

    def model_variant(self):
        recipe_class("/tmp/afr_adversarial_canary/payload.py")
        return "default"
