"""Run an exported recipe as a Flower federation on one machine: Flower's simulation engine (Ray) or its
server loop with in-process clients.

* ``backend="ray"``: ``flwr.simulation.run_simulation`` — a ``ServerApp`` with :class:`RecipeStrategy`, a
  ``ClientApp`` making a :class:`RecipeClient` per message, one virtual SuperNode per AFR client (its
  ``partition-id`` is the client index). Needs ``pip install 'flwr[simulation]'``.
* ``backend="inprocess"``: ``flwr.server.Server`` (the same round loop: configure, fit, aggregate,
  evaluate) over client proxies that call a fresh :class:`RecipeClient` in this process, one after
  another. Needs only ``flwr``; what the tests run.

Both end with the global model evaluated on every client's ``val`` and ``test`` parts (the simulation holds
all data), written as JSON by :func:`main`.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from flwr.common import (
    DisconnectRes,
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    GetParametersIns,
    GetParametersRes,
    GetPropertiesIns,
    GetPropertiesRes,
    ReconnectIns,
    RecordDict,
)
from flwr.server import Server, SimpleClientManager
from flwr.server.client_proxy import ClientProxy

from .client import RecipeClient
from .strategy import RecipeStrategy
from .task import Task, load_task

__all__ = ["run_inprocess", "run_ray", "summary", "main"]


class _InProcessProxy(ClientProxy):
    """A Flower client proxy that builds a fresh :class:`RecipeClient` for every call (as a SuperNode
    does per message) on this node's persistent state, and calls it directly."""

    def __init__(self, task: Task, client: int, seed: int) -> None:
        super().__init__(cid=str(client))
        self.task, self.client, self.seed = task, client, seed
        self.state = RecordDict()

    def _client(self) -> Any:
        return RecipeClient(self.task, self.client, self.seed, self.state).to_client()

    def get_properties(
        self, ins: GetPropertiesIns, timeout: float | None, group_id: int | None
    ) -> GetPropertiesRes:
        return self._client().get_properties(ins)

    def get_parameters(
        self, ins: GetParametersIns, timeout: float | None, group_id: int | None
    ) -> GetParametersRes:
        return self._client().get_parameters(ins)

    def fit(self, ins: FitIns, timeout: float | None, group_id: int | None) -> FitRes:
        return self._client().fit(ins)

    def evaluate(self, ins: EvaluateIns, timeout: float | None, group_id: int | None) -> EvaluateRes:
        return self._client().evaluate(ins)

    def reconnect(self, ins: ReconnectIns, timeout: float | None, group_id: int | None) -> DisconnectRes:
        return DisconnectRes(reason="")


def run_inprocess(
    task: Task, seed: int, rounds: int | None = None, **strategy_options: Any
) -> RecipeStrategy:
    """The federation through ``flwr.server.Server``'s round loop, clients in this process one at a time."""
    strategy = RecipeStrategy(task, seed, **strategy_options)
    manager = SimpleClientManager()
    for client in range(task.num_clients):
        manager.register(_InProcessProxy(task, client, seed))
    server = Server(client_manager=manager, strategy=strategy)
    server.set_max_workers(1)  # one client at a time: clients share this process's global RNG
    _history, _seconds = server.fit(num_rounds=rounds or task.profile.budget.rounds, timeout=None)
    return strategy


@functools.lru_cache(maxsize=4)
def _worker_task(folder: str, data_dir: str | None, stage: str) -> Task:
    """One task per Ray worker process (the profile's data load once, not once per message)."""
    torch.set_num_threads(1)
    return load_task(folder, data_dir=data_dir, stage=stage)


def run_ray(
    task: Task,
    seed: int,
    rounds: int | None = None,
    *,
    data_dir: str | None = None,
    num_cpus: int | None = None,
    **strategy_options: Any,
) -> RecipeStrategy:
    """The federation in Flower's simulation engine (Ray): one virtual SuperNode per AFR client."""
    if importlib.util.find_spec("ray") is None:
        raise RuntimeError("backend 'ray' needs Flower's simulation extra: pip install 'flwr[simulation]'")
    from flwr.client import ClientApp
    from flwr.server import ServerApp, ServerAppComponents, ServerConfig
    from flwr.simulation import run_simulation

    folder, stage = str(task.folder), task.stage
    strategy = RecipeStrategy(task, seed, **strategy_options)
    num_rounds = rounds or task.profile.budget.rounds

    def server_fn(context: Any) -> ServerAppComponents:
        return ServerAppComponents(strategy=strategy, config=ServerConfig(num_rounds=num_rounds))

    def client_fn(context: Any) -> Any:
        worker_task = _worker_task(folder, data_dir, stage)
        client = int(context.node_config["partition-id"])
        return RecipeClient(worker_task, client, seed, context.state).to_client()

    # Ray's workers import this package from the export folder, as the driver does.
    parent = str(Path(__file__).resolve().parents[1])
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if parent not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([parent, *paths])
    cpus = num_cpus or os.cpu_count() or 1
    run_simulation(
        server_app=ServerApp(server_fn=server_fn),
        client_app=ClientApp(client_fn=client_fn),
        num_supernodes=task.num_clients,
        backend_config={"client_resources": {"num_cpus": 1}, "init_args": {"num_cpus": cpus}},
    )
    if len(strategy.curve) < num_rounds:
        raise RuntimeError(f"the simulation stopped after {len(strategy.curve)} of {num_rounds} rounds")
    return strategy


def summary(strategy: RecipeStrategy) -> dict[str, Any]:
    """The run's curve and the final global model's metric on every client's ``val`` and ``test`` parts."""
    task, model = strategy.task, strategy.final_model()
    out: dict[str, Any] = {
        "profile": task.profile.name,
        "recipe": type(task.recipe).__name__,
        "scalars": task.recipe.scalar_values(),
        "seed": strategy.seed,
        "stage": task.stage,
        "rounds": len(strategy.curve),
        "metric": task.profile.metric_name,
        "curve": strategy.curve,
    }
    for part in ("val", "test"):
        evaluation = task.profile.evaluate(model, task.profile.data(part))
        out[part], out[f"{part}_per_client"] = evaluation.mean, evaluation.per_client
    return out


def main(folder: str | Path, argv: list[str] | None = None) -> int:
    """``python run_simulation.py [--backend ray|inprocess] [--seed N] [--rounds R] [--out result.json]``."""
    parser = argparse.ArgumentParser(prog="run_simulation.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("ray", "inprocess"), default="ray")
    parser.add_argument("--seed", type=int, default=None, help="run seed (default: the export's)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default: the profile's budget)")
    parser.add_argument("--stage", choices=("final", "search"), default=None, help="default: the export's")
    parser.add_argument("--data-dir", default=None, help="AFR data folder (default: $AFR_DATA_DIR or cache)")
    parser.add_argument("--num-cpus", type=int, default=None, help="Ray: CPUs for the clients")
    parser.add_argument("--out", default=None, help="write the result JSON here (default: stdout)")
    args = parser.parse_args(argv)
    task = load_task(folder, data_dir=args.data_dir, stage=args.stage)
    seed = args.seed if args.seed is not None else int(task.spec.get("seed", 0))
    if args.backend == "ray":
        strategy = run_ray(task, seed, args.rounds, data_dir=args.data_dir, num_cpus=args.num_cpus)
    else:
        strategy = run_inprocess(task, seed, args.rounds)
    result = summary(strategy)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        metric = task.profile.metric_name
        print(f"{metric}: val {result['val']:.4f}, test {result['test']:.4f} -> {args.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(Path.cwd()))
