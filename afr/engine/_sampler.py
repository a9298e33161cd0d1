"""Per-client mini-batch streams: shuffled epochs that restart when exhausted (FLamby's loaders)."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["BatchStream", "client_generator"]


def client_generator(seed: int, client: int, stream: int = 0) -> torch.Generator:
    """An independent, reproducible generator for one (run seed, client, purpose)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + client * 7_919 + stream * 104_729) % (2**63 - 1))


class BatchStream:
    """Index batches over ``n`` samples; each epoch is a fresh permutation, the last batch may be short."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        if n < 1:
            raise ValueError("a client needs at least one training sample")
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self._batches: list[Tensor] = []
        self._next = 0

    def next(self) -> Tensor:
        if self._next >= len(self._batches):
            self._batches = list(torch.randperm(self.n, generator=self.generator).split(self.batch_size))
            self._next = 0
        batch = self._batches[self._next]
        self._next += 1
        return batch
