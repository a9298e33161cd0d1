# ruff: noqa
# ATTACK: getattr with a *literal* dunder name, hoping literals are always fine: getattr(ctx, "__class__")
# MUST: rejected:forbidden-attribute
# WHY: a literal attribute name must still pass the attribute rules (no "_" prefix)
# CATEGORY: introspection
from afr.recipe import FedAvg


class LiteralDunder(FedAvg):
    name = "literal_dunder"

    def client_extras(self, delta, ctx):
        cls = getattr(ctx, "__class__")
        module_globals = getattr(getattr(cls, "__init__"), "__globals__")
        self.loot = module_globals
        return {}
