# ruff: noqa
# ATTACK: code that runs on import: seed torch globally and print, before any hook or sandbox limit matters
# MUST: rejected:module-statement
# WHY: module level holds only docstrings, imports, literal constants, functions and classes
# CATEGORY: structure
import torch

from afr.recipe import FedAvg

torch.manual_seed(1234)
print("imported")


class SideEffect(FedAvg):
    name = "side_effect"
