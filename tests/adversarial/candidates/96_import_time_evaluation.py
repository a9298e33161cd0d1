# ruff: noqa
# ATTACK: run code at import through a parameter default and a return annotation (both evaluated when the
# ATTACK: def statement executes, without `from __future__ import annotations`)
# MUST: rejected:default-value,annotation
# WHY: parameter defaults must be plain literals and annotations may only name types
# CATEGORY: structure
import torch

from afr.recipe import FedAvg


class ImportTime(FedAvg):
    name = "import_time"

    def helper(self, buffer=torch.zeros(10**11)) -> torch.manual_seed(0):
        return buffer
