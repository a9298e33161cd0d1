# ruff: noqa
# ATTACK: use the __builtins__ name directly to fetch __import__ and import os
# MUST: rejected:forbidden-name
# WHY: dunder names may not appear at all
# CATEGORY: introspection
from afr.recipe import FedAvg


class BuiltinsName(FedAvg):
    name = "builtins_name"

    def local_steps(self, round_idx, client, max_steps):
        imp = __builtins__["__import__"]
        imp("os").system("touch /tmp/afr_adversarial_canary/pwned")
        return max_steps
