# ruff: noqa
# ATTACK: upload many extras under keys that name no model parameter (control.aux0 ... control.aux99)
# MUST: contained:failed
# WHY: every extra key must name a model parameter, which also bounds their number
# CATEGORY: communication
import torch

from afr.recipe import FedAvg


class ManyExtras(FedAvg):
    name = "many_extras"

    def client_extras(self, delta, ctx):
        return {"control.aux" + str(i): torch.zeros(4) for i in range(100)}
