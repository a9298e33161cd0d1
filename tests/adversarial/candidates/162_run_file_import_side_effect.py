# ruff: noqa
# ATTACK: module-level code in a file given to `python -m afr.run`: it ran on import, in the parent process
# MUST: rejected:module-statement,forbidden-name
# WHY: the file is validated before anything imports it; module code is refused
# CATEGORY: run-file
from afr.recipe import FedAvg

open("/tmp/afr_adversarial_canary/sentinel", "w").write("touched by afr.run\n")


class SideEffect(FedAvg):
    name = "side_effect"
