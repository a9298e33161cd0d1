# ruff: noqa
# ATTACK: import os and read OPENAI_API_KEY from the environment inside a hook (exfiltrate it via the error message)
# MUST: rejected:import-not-allowed
# WHY: os is not an allowed import; even unvalidated, the sandbox child's environment is clean (no API keys)
# CATEGORY: imports
# SANDBOX: ok
import os

import torch

from afr.recipe import FedAvg


class EnvSniffer(FedAvg):
    name = "env_sniffer"

    def client_lr(self, round_idx, client):
        key = os.environ.get("OPENAI_API_KEY", "")
        if key:
            raise RuntimeError("LEAKED OPENAI_API_KEY=" + key)
        return self.lr
