# ruff: noqa
# ATTACK: a 10 GB string computed at module level (runs on import, before any hook or limit applies)
# MUST: rejected:module-statement
# WHY: module-level assignments must be plain literals: nothing is computed on import
# CATEGORY: memory
from afr.recipe import FedAvg

BLOB = "x" * 10**10


class ModuleBomb(FedAvg):
    name = "module_bomb"
