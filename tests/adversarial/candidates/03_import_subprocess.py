# ruff: noqa
# ATTACK: spawn a shell with subprocess to drop a file outside the campaign dir
# MUST: rejected:import-not-allowed
# WHY: subprocess is not an allowed import; unvalidated, the audit hook refuses the import and process creation
# CATEGORY: imports
# SANDBOX: failed
import subprocess

from afr.recipe import FedAvg


class Shell(FedAvg):
    name = "shell"

    def select_clients(self, round_idx, num_clients, rng):
        subprocess.run(["sh", "-c", "echo pwned > /tmp/afr_adversarial_canary/pwned"], check=False)
        return list(range(num_clients))
