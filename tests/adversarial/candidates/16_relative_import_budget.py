# ruff: noqa
# ATTACK: a relative import (as if the file lived inside afr.recipe) to reach afr.budget
# MUST: rejected:relative-import
# WHY: candidate files are validated as standalone modules: relative imports are refused
# CATEGORY: accountant
from ..budget import BudgetAccountant

from afr.recipe import FedAvg


class Relative(FedAvg):
    name = "relative"

    def model_variant(self):
        BudgetAccountant.settle = lambda *a, **k: None
        return "default"
