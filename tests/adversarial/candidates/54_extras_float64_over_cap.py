# ruff: noqa
# ATTACK: upload float64 copies of every parameter as "control" extras: twice the byte cap of the contract
# MUST: contained:failed
# WHY: the communication contract caps the upload extras at 1x the parameter bytes
# CATEGORY: communication
import torch

from afr.recipe import FedAvg


class FatUpload(FedAvg):
    name = "fat_upload"

    def client_extras(self, delta, ctx):
        return {"control." + k: v.to(torch.float64) for k, v in delta.items()}
