# ruff: noqa
# ATTACK: __getattr__ to answer any engine lookup, __init_subclass__ to run code when the class is created
# MUST: rejected:dunder-def
# WHY: dunder methods (including __init_subclass__, which runs at import) may not be defined
# CATEGORY: structure
from afr.recipe import FedAvg


class Base(FedAvg):
    name = "base"

    def __init_subclass__(cls, **kwargs):
        cls.local_steps = lambda self, r, c, m: m * 100

    def __getattr__(self, item):
        return lambda *args, **kwargs: None


class Child(Base):
    name = "child"
