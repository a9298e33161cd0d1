"""What every executor of sandboxed runs offers: the local :class:`SandboxPool` and the Ray cluster's
:class:`RayPool` implement :meth:`RunPool.submit`, :meth:`RunPool.warm` and :meth:`RunPool.close`; waiting
for one job or many, and closing on ``with``, are the same for both."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any, Self

from ..engine import RunResult
from ._jobs import RunJob

__all__ = ["RunPool"]


class RunPool(ABC):
    """Runs :class:`RunJob` s, each in a sandboxed child, at most ``workers`` at a time."""

    workers: int

    @abstractmethod
    def submit(self, job: RunJob) -> Future[RunResult]:
        """Queue ``job``; the future resolves with its :class:`RunResult`, whatever the job did."""

    @abstractmethod
    def warm(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait until the pool can run jobs; what its sandbox reported (pid, isolation, ...)."""

    @abstractmethod
    def close(self) -> None:
        """Stop: jobs in flight end :class:`SandboxClosed`, queued ones never start."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""

    def run(self, job: RunJob) -> RunResult:
        """Run one job and wait for its outcome."""
        return self.submit(job).result()

    def map(self, jobs: Iterable[RunJob]) -> list[RunResult]:
        """Run jobs concurrently (up to ``workers`` at a time); outcomes in the jobs' order."""
        futures = [self.submit(job) for job in jobs]
        return [f.result() for f in futures]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
