# ruff: noqa
# ATTACK: hide the import of os inside a method body, hoping only module-level imports are checked
# MUST: rejected:nested-import
# WHY: imports are allowed only at module level (where os would be refused as well)
# CATEGORY: imports
from afr.recipe import FedAvg


class LateImport(FedAvg):
    name = "late_import"

    def client_lr(self, round_idx, client):
        import os

        os.system("touch /tmp/afr_adversarial_canary/pwned")
        return self.lr
