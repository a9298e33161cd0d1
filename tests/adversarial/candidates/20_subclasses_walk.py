# ruff: noqa
# ATTACK: the classic sandbox escape: ().__class__.__bases__[0].__subclasses__() to find a class whose globals hold os
# MUST: rejected:forbidden-attribute
# WHY: dunder attributes are forbidden on every object, so the walk cannot start
# CATEGORY: introspection
from afr.recipe import FedAvg


class SubclassWalk(FedAvg):
    name = "subclass_walk"

    def select_clients(self, round_idx, num_clients, rng):
        for cls in ().__class__.__bases__[0].__subclasses__():
            if cls.__name__ == "_wrap_close":
                cls.__init__.__globals__["system"]("touch /tmp/afr_adversarial_canary/pwned")
        return list(range(num_clients))
