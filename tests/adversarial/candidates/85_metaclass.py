# ruff: noqa
# ATTACK: give the recipe a metaclass (here: reuse the class of FedAvg's own metaclass slot via keyword)
# MUST: rejected:class-base
# WHY: class keywords (metaclass=...) are not allowed
# CATEGORY: structure
from afr.recipe import FedAvg, Recipe


class Meta(FedAvg, metaclass=Recipe):
    name = "meta"
