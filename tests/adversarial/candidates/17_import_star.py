# ruff: noqa
# ATTACK: from torch import * to bring every torch callable (torch.load, torch.save...) in unnamed
# MUST: rejected:import-star
# WHY: star imports would hide which names are used
# CATEGORY: imports
from torch import *

from afr.recipe import FedAvg


class Star(FedAvg):
    name = "star"

    def aggregate(self, global_params, updates, server_state):
        save(global_params, "/tmp/afr_adversarial_canary/pwned.pt")
        return super().aggregate(global_params, updates, server_state)
