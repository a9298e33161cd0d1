"""The Flower strategy: AFR's server side of one recipe — selection, schedule, broadcast, aggregation.

Per round, as AFR's engine (``afr/engine/_loop.py``, ``_Federation.round``) does it:

* ``configure_fit`` calls the recipe's ``select_clients`` (with AFR's selection generator), ``broadcast``
  (its extras travel after the model's parameters) and, per selected client, ``local_steps`` and
  ``client_lr`` (capped by the profile's budget); they reach the client in its fit config;
* ``aggregate_fit`` turns the clients' results into AFR's ``ClientUpdate``s (delta = returned parameters
  minus the global ones, the client's extras) *in selection order*, whatever order Flower received them in,
  and calls the recipe's ``aggregate`` with the server state it keeps across rounds;
* ``evaluate`` (server side, optional) and ``configure_evaluate``/``aggregate_evaluate`` (on the clients)
  compute AFR's validation metric: the unweighted mean over clients of the profile's metric.

Flower's node ids are mapped to AFR's client indices once, through ``get_properties`` (``afr_client``).
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    GetPropertiesIns,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy

from afr.engine import client_generator
from afr.recipe import ClientUpdate, Params

from .task import Task, to_arrays, to_tensors

__all__ = ["RecipeStrategy"]


class RecipeStrategy(Strategy):
    """A Flower ``Strategy`` running an AFR recipe's server hooks for one seed.

    ``central_evaluation``: evaluate the global model on every client's ``val`` part on the server (a
    simulation holds all data; a real server has none). ``federated_evaluation``: ask every client for the
    metric on its own ``val`` part each round. ``curve`` collects both, one entry per round.
    """

    def __init__(
        self, task: Task, seed: int, *, central_evaluation: bool = True, federated_evaluation: bool = True
    ) -> None:
        super().__init__()
        self.task, self.seed = task, seed
        self.profile, self.recipe = task.profile, task.recipe
        self.num_clients = task.num_clients
        self.model = task.initial_model(seed).to(self.profile.device)
        self.names = [n for n, _ in self.model.named_parameters()]
        self.global_params: Params = {n: p.detach().clone() for n, p in self.model.named_parameters()}
        self.select_rng = client_generator(seed, self.num_clients, stream=1)
        self.server_state: dict[str, Any] = {}
        self.central_evaluation, self.federated_evaluation = central_evaluation, federated_evaluation
        self.curve: list[dict[str, Any]] = []
        self._proxies: dict[int, ClientProxy] = {}
        self._selected: list[int] = []

    def __repr__(self) -> str:
        return f"RecipeStrategy({type(self.recipe).__name__}, profile={self.profile.name}, seed={self.seed})"

    # --- clients ----------------------------------------------------------------------------------------

    def _clients(self, client_manager: ClientManager) -> dict[int, ClientProxy]:
        """AFR client index -> proxy, for every client (waits until all have connected)."""
        if len(self._proxies) < self.num_clients:
            client_manager.wait_for(self.num_clients)
            for proxy in client_manager.all().values():
                if proxy in self._proxies.values():
                    continue
                res = proxy.get_properties(GetPropertiesIns(config={}), timeout=None, group_id=None)
                self._proxies[int(res.properties["afr_client"])] = proxy
            missing = sorted(set(range(self.num_clients)) - set(self._proxies))
            if missing:
                raise RuntimeError(f"no Flower client reported AFR client index {missing}")
        return self._proxies

    def _record(self, server_round: int) -> dict[str, Any]:
        while len(self.curve) < server_round:
            self.curve.append({"round": len(self.curve) + 1})
        return self.curve[server_round - 1]

    # --- Flower's strategy API ------------------------------------------------------------------------

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return ndarrays_to_parameters(to_arrays(self.global_params, self.names))

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        round_idx = server_round - 1
        proxies = self._clients(client_manager)
        selected = self.recipe.select_clients(round_idx, self.num_clients, self.select_rng)
        if not isinstance(selected, list | tuple) or not selected or len(set(selected)) != len(selected):
            raise RuntimeError(f"select_clients must return distinct client indices, got {selected!r}")
        self._selected = [int(c) for c in selected]
        extras = self.recipe.broadcast(round_idx, self.server_state)
        keys = sorted(extras)
        payload = ndarrays_to_parameters(to_arrays(self.global_params, self.names) + to_arrays(extras, keys))
        max_steps = self.profile.budget.local_steps
        instructions = []
        for client in self._selected:
            steps = self.recipe.local_steps(round_idx, client, max_steps)
            if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= max_steps:
                raise RuntimeError(f"local_steps returned {steps!r}; the budget allows 0..{max_steps}")
            lr = float(self.recipe.client_lr(round_idx, client))
            if not math.isfinite(lr) or lr < 0:
                raise RuntimeError(f"client_lr returned {lr!r} in round {round_idx}")
            config: dict[str, Scalar] = {
                "round": round_idx,
                "steps": steps,
                "lr": lr,
                "extras": json.dumps(keys),
            }
            instructions.append((proxies[client], FitIns(payload, config)))
        return instructions

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        if failures:  # AFR fails a run when any client fails: a partial round is another algorithm
            first = failures[0]
            raise RuntimeError(f"round {server_round}: {len(failures)} client(s) failed: {first!r}")
        by_client = {int(res.metrics["afr_client"]): res for _, res in results}
        if sorted(by_client) != sorted(self._selected):
            raise RuntimeError(f"round {server_round}: results of {sorted(by_client)}, sent {self._selected}")
        updates, losses = [], []
        n = len(self.names)
        for client in self._selected:  # AFR's order: the aggregate's sums add in selection order
            res = by_client[client]
            arrays = parameters_to_ndarrays(res.parameters)
            local = to_tensors(arrays[:n], self.names)
            delta = {k: local[k] - self.global_params[k] for k in self.names}
            extras = to_tensors(arrays[n:], json.loads(str(res.metrics["extras"])))
            updates.append(ClientUpdate(client, delta, res.num_examples, int(res.metrics["steps"]), extras))
            if math.isfinite(float(res.metrics["loss"])):
                losses.append(float(res.metrics["loss"]))
        copies = {k: v.clone() for k, v in self.global_params.items()}
        new = self.recipe.aggregate(copies, updates, self.server_state)
        self.global_params = _checked(new, self.global_params)
        train_loss = sum(losses) / len(losses) if losses else math.nan
        self._record(server_round)["train_loss"] = train_loss
        return ndarrays_to_parameters(to_arrays(self.global_params, self.names)), {"train_loss": train_loss}

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        if not self.federated_evaluation:
            return []
        proxies = self._clients(client_manager)
        ins = EvaluateIns(parameters, {"part": "val"})
        return [(proxies[c], ins) for c in range(self.num_clients)]

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        if failures or not results:
            return None, {}
        per_client = {int(r.metrics["afr_client"]): float(r.metrics["metric"]) for _, r in results}
        scores = [per_client[c] for c in sorted(per_client)]
        mean = sum(scores) / len(scores)  # FLamby's (and AFR's) unweighted mean over clients
        record = self._record(server_round)
        record["val_federated"], record["val_federated_per_client"] = mean, scores
        return None, {"val": mean}

    def evaluate(self, server_round: int, parameters: Parameters) -> tuple[float, dict[str, Scalar]] | None:
        if not self.central_evaluation or server_round == 0:  # AFR validates after each round, not before
            return None
        evaluation = self.profile.evaluate(self.final_model(), self.profile.data("val"))
        record = self._record(server_round)
        record["val"], record["val_per_client"] = evaluation.mean, evaluation.per_client
        return 0.0, {"val": evaluation.mean}

    # --- results ------------------------------------------------------------------------------------------

    def final_model(self) -> torch.nn.Module:
        """The model with the current global parameters (and the initial model's buffers)."""
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                p.copy_(self.global_params[name])
        return self.model


def _checked(new: Any, reference: Params) -> Params:
    """The aggregate's output checked as AFR's engine checks it, and copied (never aliasing server_state)."""
    if not isinstance(new, dict) or set(new) != set(reference):
        raise RuntimeError("aggregate must return a tensor for exactly the model's parameters")
    for key, value in new.items():
        if not isinstance(value, torch.Tensor) or value.shape != reference[key].shape:
            raise RuntimeError(f"aggregate returned a wrong shape for {key!r}")
        if not torch.isfinite(value).all():
            raise RuntimeError(f"aggregate produced non-finite values in {key!r}")
    return {k: torch.empty_like(reference[k]).copy_(new[k].detach()) for k in reference}
