# ruff: noqa
# ATTACK: str.format walks attributes inside the format string: "{0.__class__.__init__.__globals__}".format(self)
# MUST: rejected:forbidden-attribute
# WHY: format/format_map are forbidden attributes exactly because of this walk
# CATEGORY: introspection
from afr.recipe import FedAvg

TEMPLATE = "{0.aggregate.__func__.__globals__[torch]}"


class FormatWalk(FedAvg):
    name = "format_walk"

    def client_extras(self, delta, ctx):
        self.leak = TEMPLATE.format(self)
        self.leak2 = "{x.__class__}".format_map({"x": ctx})
        return {}
