"""The Flower client: one AFR client's local training, with the recipe's local hooks, as a ``NumPyClient``.

Per round it does what AFR's per-client engine path does (``_Federation.train_client``): load the global
parameters and its own buffers, seed the global RNG for the client-round, take ``steps`` SGD steps of the
recipe's ``local_objective`` on its next mini-batches, then call ``client_extras``. Its batch stream, its
augmentation generator, its buffers and the recipe's ``client_state`` persist across rounds in Flower's
node state (``context.state``), so a fresh client object per round (as Flower makes them) continues where
the last one stopped.

The schedule (steps, learning rate), the server's extras and the round index come in the fit config from
the strategy (``strategy.py``); the client returns its new parameters followed by its extras.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import torch
from flwr.client import NumPyClient
from flwr.common import ConfigRecord, RecordDict

from afr.engine import client_generator
from afr.profiles import ClientData
from afr.recipe import LocalContext, Params

from .task import Task, client_round_seed, pack, to_arrays, to_tensors, unpack

__all__ = ["RecipeClient", "STATE_KEY"]

STATE_KEY = "afr"
"""The ConfigRecord of ``context.state`` that holds this client's persistent state."""


class _Batches:
    """AFR's ``BatchStream``: a fresh permutation per epoch from the client's generator, consecutive slices
    of the permuted data (the last one may be short); its position survives as (generator state,
    permutation, start)."""

    def __init__(self, data: ClientData, batch_size: int, generator: torch.Generator) -> None:
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self.perm: torch.Tensor | None = None
        self.epoch: ClientData | None = None
        self.start = len(data)

    def resume(self, perm: torch.Tensor | None, start: int) -> None:
        self.perm, self.start = perm, start
        self.epoch = None if perm is None else self.data.subset(perm)

    def next(self) -> tuple[Any, Any]:
        n = len(self.data)
        if self.start >= n:
            self.resume(torch.randperm(n, generator=self.generator), 0)
        assert self.epoch is not None
        stop = min(self.start + self.batch_size, n)
        batch = self.epoch.slice(self.start, stop)
        self.start = stop
        return batch


class RecipeClient(NumPyClient):
    """Client ``client`` (AFR's index of a training client) of an exported task."""

    def __init__(self, task: Task, client: int, seed: int, state: RecordDict) -> None:
        self.task, self.client, self.seed, self.state = task, client, seed, state
        self.profile, self.recipe = task.profile, task.recipe
        self.data = self.profile.data(task.train_part)[client]  # type: ignore[arg-type]
        self.model = self.profile.build_model(self.recipe.model_variant()).to(self.profile.device)
        self.names = [n for n, _ in self.model.named_parameters()]
        self.params = [p for _, p in self.model.named_parameters()]
        self.buffers = [b for _, b in self.model.named_buffers()]
        self._restore()

    # --- persistent state ---------------------------------------------------------------------------

    def _restore(self) -> None:
        batch_size = self.profile.budget.batch_size
        record = self.state.get(STATE_KEY)
        if record is None:  # the first round: AFR's streams for (seed, client), the model's initial buffers
            self.batches = _Batches(self.data, batch_size, client_generator(self.seed, self.client))
            self.augment = client_generator(self.seed, self.client, stream=2)
            self.client_state: dict[str, Any] = {}
            self.buffer_values = [b.detach().clone() for b in self.buffers]
            return
        saved = unpack(record["blob"])  # type: ignore[arg-type]
        self.batches = _Batches(self.data, batch_size, torch.Generator())
        self.batches.generator.set_state(saved["batch_rng"])
        self.batches.resume(saved["perm"], saved["start"])
        self.augment = torch.Generator()
        self.augment.set_state(saved["augment_rng"])
        self.client_state = saved["client_state"]
        self.buffer_values = saved["buffers"]

    def _save(self) -> None:
        saved = {
            "batch_rng": self.batches.generator.get_state(),
            "perm": self.batches.perm,
            "start": self.batches.start,
            "augment_rng": self.augment.get_state(),
            "client_state": self.client_state,
            "buffers": self.buffer_values,
        }
        self.state[STATE_KEY] = ConfigRecord({"blob": pack(saved)})

    # --- Flower's client API --------------------------------------------------------------------------

    def get_properties(self, config: dict[str, Any]) -> dict[str, Any]:
        """Which AFR client this node is (the strategy maps Flower's node ids to AFR's client indices)."""
        return {"afr_client": self.client, "num_samples": len(self.data)}

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return to_arrays(dict(self.model.named_parameters()), self.names)

    def _load(self, weights: Params) -> None:
        with torch.no_grad():
            for name, p in zip(self.names, self.params, strict=True):
                p.copy_(weights[name])
            for b, saved in zip(self.buffers, self.buffer_values, strict=True):
                b.copy_(saved)

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self.batches.next()
        inputs, targets = self.profile.train_batch(inputs, targets, self.augment)
        device = self.profile.device
        return inputs.to(device), targets.to(device)

    def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[list[np.ndarray], int, dict]:
        """``config``: round, steps, lr and the names of the server's extras (which follow the parameters)."""
        round_idx, steps, lr = int(config["round"]), int(config["steps"]), float(config["lr"])
        extra_names = json.loads(str(config.get("extras", "[]")))
        global_params = to_tensors(parameters[: len(self.names)], self.names)
        server_extras = to_tensors(parameters[len(self.names) :], extra_names)
        self._load(global_params)
        torch.manual_seed(client_round_seed(self.seed, round_idx, self.client))
        ctx = LocalContext(
            round_idx,
            self.client,
            {k: v.clone() for k, v in global_params.items()},
            self.client_state,
            len(self.data),
            lr=lr,
            num_steps=steps,
            server_extras=server_extras,
        )
        self.model.train()
        loss = None
        for step in range(steps):
            inputs, targets = self._next_batch()
            task_loss = self.profile.loss(self.model(inputs), targets)
            ctx.step = step
            loss = self.recipe.local_objective(task_loss, self.model, ctx)
            loss.backward()
            _sgd_step(self.params, lr)
        with torch.no_grad():
            delta = {n: p.detach() - global_params[n] for n, p in zip(self.names, self.params, strict=True)}
            self.buffer_values = [b.detach().clone() for b in self.buffers]
        extras = self.recipe.client_extras({k: v.clone() for k, v in delta.items()}, ctx)
        self._save()
        extra_keys = sorted(extras)
        metrics: dict[str, Any] = {
            "afr_client": self.client,
            "steps": steps,
            "extras": json.dumps(extra_keys),
            "loss": float(loss.detach()) if loss is not None else math.nan,
        }
        new = {n: p.detach() for n, p in zip(self.names, self.params, strict=True)}
        arrays = to_arrays(new, self.names) + to_arrays(extras, extra_keys)
        return [a.copy() for a in arrays], len(self.data), metrics

    def evaluate(self, parameters: list[np.ndarray], config: dict[str, Any]) -> tuple[float, int, dict]:
        """The profile's metric on this client's ``part`` (config, default ``val``) with the given parameters.

        AFR's curve is the unweighted mean of these over clients; like AFR, evaluation uses the buffers of
        client 0's model (here: this client's own, which is the same for models without buffers).
        """
        part = str(config.get("part", "val"))
        self._load(to_tensors(parameters[: len(self.names)], self.names))
        data = self.profile.data(part)[self.client]  # type: ignore[arg-type]
        evaluation = self.profile.evaluate(self.model, [data])
        return 0.0, len(data), {"afr_client": self.client, "metric": evaluation.mean, "part": part}


def _sgd_step(params: list[torch.Tensor], lr: float) -> None:
    """AFR's SGD step (``afr/engine/_loop.py``): p <- p - lr * grad, in one foreach call, grads cleared."""
    with_grad = [p for p in params if p.grad is not None]
    with torch.no_grad():
        torch._foreach_add_(with_grad, [p.grad for p in with_grad], alpha=-lr)
    for p in with_grad:
        p.grad = None
