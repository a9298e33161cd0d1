# ruff: noqa
# ATTACK: replace the child with another program (os.execv), which would run outside the audit hook and
# ATTACK: could reach the network where the sandbox had no network namespace (issue 14, class 7)
# MUST: rejected:import-not-allowed
# WHY: os is not importable; unvalidated, the audit hook refuses os.exec* and, below it, the seccomp filter
# WHY: refuses execve in every sandboxed process
# CATEGORY: network
# SANDBOX: failed
import os

from afr.recipe import FedAvg


class Builder(FedAvg):
    name = "builder"

    def local_steps(self, round_idx, client, max_steps):
        os.execv("/usr/bin/env", ["env", "true"])
        raise RuntimeError("LEAKED: exec returned")
