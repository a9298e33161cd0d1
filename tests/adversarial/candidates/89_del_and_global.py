# ruff: noqa
# ATTACK: tamper with the shared machinery: `del` a hook from the base class and rebind a helper via `global`
# MUST: rejected:del-attribute,global-statement
# WHY: no `del obj.attr` and no `global`/`nonlocal`
# CATEGORY: structure
from afr.recipe import FedAvg, weighted_mean_delta

SCALE = 1.0


class Tamper(FedAvg):
    name = "tamper"

    def model_variant(self):
        global SCALE
        SCALE = 100.0
        del FedAvg.local_steps
        return "default"
