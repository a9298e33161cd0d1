# ruff: noqa
# ATTACK: import the budget accountant to cancel this arm's charges (free runs)
# MUST: rejected:import-not-allowed
# WHY: afr.budget is campaign machinery; a recipe may import only the allowed modules
# CATEGORY: accountant
import afr.budget

from afr.recipe import FedAvg


class Refund(FedAvg):
    name = "refund"

    def model_variant(self):
        afr.budget.ARMS = ("agent",)
        afr.budget.BudgetAccountant.reserve = lambda *a, **k: None
        return "default"
