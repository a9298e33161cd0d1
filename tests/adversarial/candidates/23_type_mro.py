# ruff: noqa
# ATTACK: type(self).mro() to climb to object and then list every loaded class
# MUST: rejected:forbidden-name,forbidden-attribute
# WHY: type/object are forbidden names and mro is a forbidden attribute
# CATEGORY: introspection
from afr.recipe import FedAvg


class MroWalk(FedAvg):
    name = "mro_walk"

    def model_variant(self):
        top = type(self).mro()[-1]
        self.everything = top.__subclasses__()
        return "default"
