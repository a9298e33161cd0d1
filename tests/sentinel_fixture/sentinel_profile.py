"""A synthetic profile whose test split and held-out client carry a sentinel pattern (tests/test_sentinel.py).

It lives in its own folder because the sandbox lets a child read its profile's import root: nothing here
holds the pattern itself, only how to draw it from ``sentinel_seed`` in the config.
"""

from __future__ import annotations

import numpy as np
import torch

from afr.profiles._base import ClientData
from afr.profiles.synthetic import Synthetic

MOTIF_WORDS = 16
LOW, HIGH = 1000.0, 2000.0
"""Motif values are float32 in [LOW, HIGH): the candidate pre-filters on that range of bit patterns."""
TEST_ROWS = (40, 300, 700, 2500, 9000)
"""Rows of each training client's test split (cycled): heap-sized and mmap-sized arrays alike."""


def motif(seed: int) -> torch.Tensor:
    """The sentinel: MOTIF_WORDS float32 values drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    return torch.as_tensor(rng.uniform(LOW, HIGH, MOTIF_WORDS).astype(np.float32))


def tiled(pattern: torch.Tensor, rows: int, dim: int) -> torch.Tensor:
    """``pattern`` repeated across a (rows, dim) float32 array, continuing from row to row."""
    count = rows * dim
    return pattern.repeat(count // len(pattern) + 1)[:count].reshape(rows, dim).clone()


class SentinelSynthetic(Synthetic):
    """Synthetic data; every test row and every row of the held-out clients is the sentinel motif."""

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        train, _ = super().load_splits()
        pattern = motif(int(self.cfg["sentinel_seed"]))
        held = set(self.heldout_clients)
        out_train, out_test = [], []
        for k, tr in enumerate(train):
            rows = TEST_ROWS[k % len(TEST_ROWS)]
            labels = torch.arange(rows) % self.num_classes
            out_test.append(ClientData(tiled(pattern, rows, self.dim), labels))
            if k in held:
                tr = ClientData(tiled(pattern, len(tr), self.dim), tr.targets)
            out_train.append(tr)
        return out_train, out_test
