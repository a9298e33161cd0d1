# ruff: noqa
# ATTACK: keep torch.Tensor on self, then patch it through the alias: self.t.float = ... makes the profile's
# ATTACK: accuracy ((argmax == y).float().mean()) evaluate to 1.0, forging the search score
# MUST: rejected:attribute-assignment
# WHY: attributes may be assigned only on self itself; self.t.float assigns on torch.Tensor (shared with the engine)
# CATEGORY: monkeypatch
import torch

from afr.recipe import FedAvg


class AliasPatch(FedAvg):
    name = "alias_patch"

    def aggregate(self, global_params, updates, server_state):
        self.tensor_class = torch.Tensor
        self.tensor_class.float = lambda t, *args, **kwargs: torch.ones(1)
        return super().aggregate(global_params, updates, server_state)
