# ruff: noqa
# ATTACK: write a file outside the campaign dir (the canary directory) from a hook
# MUST: rejected:forbidden-name
# WHY: open is a forbidden name; unvalidated, the audit hook refuses every open for writing (and RLIMIT_FSIZE is 0)
# CATEGORY: files-env-network
# SANDBOX: failed
from afr.recipe import FedAvg


class CanaryWriter(FedAvg):
    name = "canary_writer"

    def model_variant(self):
        with open("/tmp/afr_adversarial_canary/pwned", "w") as fh:
            fh.write("pwned")
        with open("/tmp/afr_adversarial_canary/sentinel", "a") as fh:
            fh.write("tampered")
        return "default"
