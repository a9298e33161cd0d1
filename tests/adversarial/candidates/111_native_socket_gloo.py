# ruff: noqa
# ATTACK: reach the network through a native process group (gloo over tcp://), whose sockets are opened by
# ATTACK: C++ code an audit hook cannot see (issue 14, class 7: network isolation only as root)
# MUST: rejected:import-not-allowed
# WHY: torch.distributed is not importable; unvalidated, socket() fails under the seccomp filter
# CATEGORY: network
# SANDBOX: failed
from datetime import timedelta

import torch
import torch.distributed as dist

from afr.recipe import FedAvg


class GlooExfil(FedAvg):
    name = "gloo_exfil"

    def aggregate(self, global_params, updates, server_state):
        dist.init_process_group(
            "gloo", init_method="tcp://127.0.0.1:29517", rank=0, world_size=1, timeout=timedelta(seconds=2)
        )
        dist.all_reduce(torch.zeros(1))
        raise RuntimeError("LEAKED: a native process group is up")
