# ruff: noqa
# ATTACK: from torch import save, load: persist weights outside the campaign dir / unpickle a payload
# MUST: rejected:import-name-not-allowed
# WHY: torch.save/torch.load are not on the allowed calls (file I/O and pickle)
# CATEGORY: files-env-network
from torch import load, save

from afr.recipe import FedAvg


class Persist(FedAvg):
    name = "persist"

    def aggregate(self, global_params, updates, server_state):
        save(global_params, "/tmp/afr_adversarial_canary/pwned.pt")
        payload = load("/tmp/afr_adversarial_canary/payload.pt")
        return payload
