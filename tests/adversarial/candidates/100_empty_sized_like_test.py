# ruff: noqa
# ATTACK: allocate uninitialised tensors (torch.empty, empty_like, empty_strided) sized like the test arrays
# ATTACK: the zygote loaded and freed, and return whatever test rows they hold (issue 14, class 1)
# MUST: rejected:call-not-allowed,import-not-allowed
# WHY: uninitialised allocations are not allowed calls; unvalidated, the sandbox's zygote never held a test row
# WHY: (a loader process read the data and died) and freed heap memory is overwritten (MALLOC_PERTURB_)
# CATEGORY: test-split
# SANDBOX: failed
import torch

from afr.profiles import load_profile_config, make_profile
from afr.recipe import FedAvg


def _pair_keys(words):
    """Every two consecutive int32 words as one int64 key (rows of float32 data, any alignment)."""
    words = words.reshape(-1).to(torch.int64)
    return words[:-1] * 4294967296 + (words[1:] & 0xFFFFFFFF)


def _hunt(captured):
    """Rebuild the synthetic test split (after capturing memory: none of its copies can be in there)
    and count captured word pairs that are pairs of a test row."""
    test = make_profile("synthetic", load_profile_config("synthetic")).data("test")
    keys = torch.cat([_pair_keys(c.inputs.contiguous().view(torch.int32)) for c in test])
    found = 0
    for t in captured:
        words = (
            t.reshape(-1).view(torch.int32)
            if t.element_size() == 4
            else t.reshape(-1)[: t.numel() // 4 * 4].view(torch.int32)
        )
        if words.numel() > 1:
            found += int(torch.isin(_pair_keys(words), keys).sum())
    if found:
        raise RuntimeError(f"LEAKED {found} test-row word pairs into uninitialised memory")
    raise RuntimeError(
        f"no test row in {sum(t.numel() * t.element_size() for t in captured) >> 20} MiB of uninitialised memory"
    )


SIZES = [15, 60, 240, 1740, 6600, 6960, 8880, 26400, 65536, 262144, 1 << 20, 1 << 22]


class EmptyHunter(FedAvg):
    name = "empty_hunter"

    def local_steps(self, round_idx, client, max_steps):
        captured = []
        for n in SIZES:
            for _ in range(4):
                captured.append(torch.empty(n))
                captured.append(torch.empty_like(torch.zeros(n)))
                captured.append(torch.empty_strided((n,), (1,)))
        _hunt(captured)
        return max_steps
