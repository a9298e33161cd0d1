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
        self._n = len(data)
        self._perm: torch.Tensor | None = None
        self._epoch: ClientData | None = None  # the data in this epoch's order, gathered on first use
        self._start = len(data)

    def _advance(self) -> None:
        if self._start >= self._n:
            self._perm = torch.randperm(self._n, generator=self.generator)
            self._epoch = None
            self._start = 0

    def next(self) -> tuple[Any, Any]:
        self._advance()
        if self._epoch is None:
            assert self._perm is not None
            self._epoch = self.data.subset(self._perm)
        stop = min(self._start + self.batch_size, self._n)
        batch = self._epoch.slice(self._start, stop)
        self._start = stop
        return batch

    def take(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The sample indices of the next ``count`` batches, as :meth:`next` would give them (the same
        random draws): ``[count, batch_size]`` indices into the data (a short batch padded with 0) and
        ``[count]`` batch lengths. One call per epoch instead of one per batch."""
        size, n = self.batch_size, self._n
        indices, lengths = [], []
        while count > 0:
            self._advance()
            assert self._perm is not None
            left = n - self._start  # the epoch's remaining samples: whole batches, maybe a short last one
            batches = min(-(-left // size), count)
            stop = min(self._start + batches * size, n)
            padded = torch.zeros(batches * size, dtype=torch.long)
            padded[: stop - self._start] = self._perm[self._start : stop]
            indices.append(padded.view(batches, size))
            sizes = torch.full((batches,), size, dtype=torch.long)
            sizes[-1] = stop - self._start - (batches - 1) * size
            lengths.append(sizes)
            self._start = stop
            count -= batches
        if not indices:
            return torch.zeros(0, size, dtype=torch.long), torch.zeros(0, dtype=torch.long)
        return torch.cat(indices), torch.cat(lengths)
