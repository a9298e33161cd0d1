# ruff: noqa
# ATTACK: open a listening TCP socket from native code (torch.distributed.TCPStore), which no audit hook
# ATTACK: sees; as an unprivileged user the zygote had no network namespace before (issue 14, class 7)
# MUST: rejected:import-not-allowed
# WHY: torch.distributed is not importable; unvalidated, the seccomp filter refuses socket() in every
# WHY: sandboxed process (and the zygote sits in an empty network namespace, as root or in a user namespace)
# CATEGORY: network
# SANDBOX: failed
from datetime import timedelta

import torch.distributed as dist

from afr.recipe import FedAvg


class NativeListener(FedAvg):
    name = "native_listener"

    def local_steps(self, round_idx, client, max_steps):
        store = dist.TCPStore("0.0.0.0", 0, world_size=1, is_master=True, timeout=timedelta(seconds=2))
        raise RuntimeError(f"LEAKED: a native socket listens on port {store.port}")
