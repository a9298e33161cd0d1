# ruff: noqa
# ATTACK: getattr/setattr with computed attribute names to reach private state ("_" + "parameters")
# MUST: rejected:dynamic-attribute
# WHY: getattr/setattr are allowed only with a string-literal attribute name that passes the attribute rules
# CATEGORY: introspection
from afr.recipe import FedAvg


class ComputedAttr(FedAvg):
    name = "computed_attr"

    def local_objective(self, task_loss, model, ctx):
        private = getattr(model, "_" + "parameters")
        hook = "local" + "_steps"
        setattr(self, hook, lambda r, c, m: m * 10)
        return task_loss + 0.0 * len(private)
