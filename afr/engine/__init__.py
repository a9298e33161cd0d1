"""Federated engine: a custom, seeded, deterministic loop over LightningModule client steps."""

from ._loop import RunResult, Stage, run_federation
from ._module import ClientModule
from ._sampler import BatchStream, client_generator

__all__ = ["run_federation", "RunResult", "Stage", "ClientModule", "BatchStream", "client_generator"]
