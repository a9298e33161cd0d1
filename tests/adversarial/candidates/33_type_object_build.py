# ruff: noqa
# ATTACK: build a class at run time with type(...) deriving from object to escape the class rules
# MUST: rejected:forbidden-name
# WHY: type and object are forbidden names
# CATEGORY: dynamic-code
from afr.recipe import FedAvg


class RuntimeClass(FedAvg):
    name = "runtime_class"

    def model_variant(self):
        Evil = type("Evil", (object,), {"x": 1})
        self.evil = Evil()
        return "default"
