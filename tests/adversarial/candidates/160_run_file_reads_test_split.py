# ruff: noqa
# ATTACK: a file given to `python -m afr.run recipe=<file.py>` that loads the profile's test split (that command
# ATTACK: used to execute the file unvalidated, in the process holding the test split) and trains on it
# MUST: rejected:import-not-allowed
# WHY: a file given to afr.run is validated like any candidate and trains only in the sandbox
# CATEGORY: run-file
from afr.profiles import make_profile

from afr.recipe import FedAvg


class PeekAtTest(FedAvg):
    name = "peek"

    def local_objective(self, task_loss, model, ctx):
        test = make_profile("synthetic").data("test")
        return task_loss
