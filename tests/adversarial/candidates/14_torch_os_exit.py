# ruff: noqa
# ATTACK: reach os through torch's module attributes (torch.os) and call os._exit / os.system
# MUST: rejected:forbidden-attribute,call-not-allowed
# WHY: _exit is a private attribute and torch.os.system is not an allowed call; modules are usable only via allowed calls
# CATEGORY: imports
import torch

from afr.recipe import FedAvg


class HardExit(FedAvg):
    name = "hard_exit"

    def local_steps(self, round_idx, client, max_steps):
        torch.os.system("touch /tmp/afr_adversarial_canary/pwned")
        torch.os._exit(0)
        return max_steps
