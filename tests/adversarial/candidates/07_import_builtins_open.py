# ruff: noqa
# ATTACK: import builtins to get at open() without naming it directly
# MUST: rejected:import-not-allowed
# WHY: builtins is not an allowed import; open/eval stay out of reach
# CATEGORY: imports
import builtins

from afr.recipe import FedAvg


class BuiltinsOpen(FedAvg):
    name = "builtins_open"

    def select_clients(self, round_idx, num_clients, rng):
        with builtins.open("/tmp/afr_adversarial_canary/pwned", "w") as fh:
            fh.write("pwned")
        return list(range(num_clients))
