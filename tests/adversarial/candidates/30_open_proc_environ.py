# ruff: noqa
# ATTACK: open("/proc/self/environ") to read API keys without importing os
# MUST: rejected:forbidden-name
# WHY: open is a forbidden name; unvalidated, the audit hook refuses reads outside the allowed roots
# CATEGORY: files-env-network
# SANDBOX: failed
from afr.recipe import FedAvg


class ProcEnviron(FedAvg):
    name = "proc_environ"

    def client_lr(self, round_idx, client):
        with open("/proc/self/environ", "rb") as fh:
            env = fh.read()
        if b"sk-test-canary" in env:
            raise RuntimeError("LEAKED " + env.decode("latin-1"))
        return self.lr
