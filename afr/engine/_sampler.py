"""Per-client mini-batch streams: shuffled epochs that restart when exhausted (FLamby's loaders)."""

from __future__ import annotations

from typing import Any

import torch

from ..profiles import ClientData

__all__ = ["BatchStream", "client_generator"]


def client_generator(seed: int, client: int, stream: int = 0) -> torch.Generator:
    """An independent, reproducible generator for one (run seed, client, purpose)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + client * 7_919 + stream * 104_729) % (2**63 - 1))


class BatchStream:
    """Mini-batches of one client's data; each epoch is a fresh permutation, the last batch may be short.

    The epoch's permutation is applied once (one gather per epoch, then slices), which yields the
    same batches as indexing every batch but costs far less on small models.
    """

    def __init__(self, data: ClientData, batch_size: int, generator: torch.Generator) -> None:
        if len(data) < 1:
            raise ValueError("a client needs at least one training sample")
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self._epoch: ClientData | None = None
        self._start = len(data)

    def next(self) -> tuple[Any, Any]:
        n = len(self.data)
        if self._start >= n:
            self._epoch = self.data.subset(torch.randperm(n, generator=self.generator))
            self._start = 0
        assert self._epoch is not None
        stop = min(self._start + self.batch_size, n)
        batch = self._epoch.slice(self._start, stop)
        self._start = stop
        return batch
