# ruff: noqa
# ATTACK: make hooks generators / coroutines so their suspended frames (gi_frame, cr_frame) outlive the call
# MUST: rejected:yield,async
# WHY: no generators and no async code in recipes
# CATEGORY: structure
from afr.recipe import FedAvg


class Suspended(FedAvg):
    name = "suspended"

    def select_clients(self, round_idx, num_clients, rng):
        yield from range(num_clients)

    async def probe(self):
        return 1
