"""The federated loop: rounds, client selection, local training, aggregation, validation.

The engine knows no search and charges nothing. It loads only training parts of a profile
(``fit`` + ``val`` while searching, ``train`` + ``val`` for final runs); the test split is
evaluated by the caller on the returned weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..errors import TrainingFailure
from ..profiles import Profile
from ..recipe import ClientUpdate, LocalContext, Params, Recipe
from ._guard import ForwardGuard
from ._module import ClientModule
from ._result import RunResult
from ._sampler import BatchStream, client_generator

__all__ = ["run_federation", "Stage"]

Stage = Literal["search", "final"]


def _nbytes(tensors: Params) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _sgd_step(params: list[Tensor], lr: float) -> None:
    """Plain SGD, p <- p - lr * grad: the same arithmetic as ``torch.optim.SGD`` without momentum,
    without its per-step dispatch and profiler hooks (a third of a step's cost on tiny models)."""
    with_grad = [p for p in params if p.grad is not None]
    with torch.no_grad():
        torch._foreach_add_(with_grad, [p.grad for p in with_grad], alpha=-lr)
    for p in with_grad:
        p.grad = None


def _versions(tensors: Any) -> list[int]:
    # In-place writes bump a tensor's version counter (shared with its .detach() views).
    return [t._version for t in tensors]


def _client_round_seed(seed: int, round_idx: int, client: int) -> int:
    """Seed of the global RNG for one client-round (dropout etc.), independent of client order."""
    return (seed * 1_000_003 + round_idx * 7_919 + client * 104_729 + 1) % (2**63 - 1)


def _check_clients(selected: Any, num_clients: int) -> list[int]:
    if not isinstance(selected, list | tuple) or not selected:
        raise TrainingFailure(
            f"select_clients must return a non-empty list of client indices, got {selected!r}"
        )
    out = []
    for c in selected:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < num_clients:
            raise TrainingFailure(
                f"select_clients returned {c!r}; valid client indices are 0..{num_clients - 1}"
            )
        out.append(int(c))
    if len(set(out)) != len(out):
        raise TrainingFailure(f"select_clients returned a client twice: {out}")
    return out


def _check_steps(steps: Any, max_steps: int) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= max_steps:
        raise TrainingFailure(
            f"local_steps returned {steps!r}; the budget allows an integer in 0..{max_steps}"
        )
    return steps


def _check_params(new: Any, reference: Params, where: str) -> Params:
    if not isinstance(new, dict) or set(new) != set(reference):
        raise TrainingFailure(f"{where} must return a tensor for exactly the model's parameters")
    for key, value in new.items():
        if not isinstance(value, Tensor) or value.shape != reference[key].shape:
            raise TrainingFailure(f"{where} returned a wrong shape for {key!r}")
        if not torch.isfinite(value).all():
            raise TrainingFailure(f"{where} produced non-finite values in {key!r}")
    return {k: new[k].detach().to(reference[k].dtype) for k in reference}


def run_federation(
    profile: Profile,
    recipe: Recipe,
    seed: int,
    *,
    stage: Stage = "search",
    log_dir: str | Path | None = None,
    validate_every: int = 1,
    threads: int | None = 1,
    on_round: Callable[[dict[str, Any]], None] | None = None,
) -> RunResult:
    """Train ``recipe`` on ``profile`` for the profile's budget with one seed.

    ``stage="search"`` trains on ``fit`` (train minus validation); ``stage="final"`` on the whole
    train split. Both report the validation metric per round; neither touches ``test``.
    Same arguments → bit-identical result.
    """
    if stage not in ("search", "final"):
        raise ValueError(f"stage must be 'search' or 'final', got {stage!r}")
    start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(profile, recipe, seed, stage, log_dir, validate_every, on_round, start)
    finally:
        torch.set_num_threads(previous_threads)


def _run(
    profile: Profile,
    recipe: Recipe,
    seed: int,
    stage: Stage,
    log_dir: str | Path | None,
    validate_every: int,
    on_round: Callable[[dict[str, Any]], None] | None,
    start: float,
) -> RunResult:
    train = profile.data("fit" if stage == "search" else "train")
    monitor = profile.data("val")
    budget = profile.budget
    num_clients = len(train)

    torch.manual_seed(seed)
    variant = recipe.model_variant()
    device = profile.device
    model = profile.build_model(variant).to(device)
    module = ClientModule(model, profile.loss, recipe)
    module.train()
    names = [n for n, _ in model.named_parameters()]
    params = [p for _, p in model.named_parameters()]
    buffers = [b for _, b in model.named_buffers()]
    global_params: Params = {n: p.detach().clone() for n, p in zip(names, params, strict=True)}
    client_buffers = [[b.detach().clone() for b in buffers] for _ in range(num_clients)]
    streams = [BatchStream(d, budget.batch_size, client_generator(seed, c)) for c, d in enumerate(train)]
    augment_rngs = [client_generator(seed, c, stream=2) for c in range(num_clients)]

    # Skipping the identity transform and the CPU->CPU move keeps tiny models' steps as cheap as before.
    transforms = type(profile).train_batch is not Profile.train_batch
    on_cpu = device.type == "cpu"

    def next_batch(client: int) -> tuple[Tensor, Tensor]:
        inputs, targets = streams[client].next()
        if transforms:
            inputs, targets = profile.train_batch(inputs, targets, augment_rngs[client])
        if on_cpu:
            return inputs, targets
        return inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)

    select_rng = client_generator(seed, num_clients, stream=1)
    client_states: list[dict[str, Any]] = [{} for _ in range(num_clients)]
    server_state: dict[str, Any] = {}
    result = RunResult(variant, {}, steps_per_client=[0] * num_clients)
    writer = _writer(log_dir)

    def load(weights: Params, client: int) -> None:
        with torch.no_grad():
            for name, p in zip(names, params, strict=True):
                p.copy_(weights[name])
            for b, saved in zip(buffers, client_buffers[client], strict=True):
                b.copy_(saved)

    forward_calls = [0]

    def count_forward(_module: nn.Module, _inputs: Any) -> None:
        forward_calls[0] += 1

    model.register_forward_pre_hook(count_forward)
    contract = profile.contract
    guard = ForwardGuard(model)
    module.forward_window = guard.allow

    guard.__enter__()  # the guard's hook must be removed however the loop ends (see finally)
    try:
        for round_idx in range(budget.rounds):
            selected = _check_clients(recipe.select_clients(round_idx, num_clients, select_rng), num_clients)
            down_extras = recipe.broadcast(round_idx, server_state)
            down_bytes = _nbytes(global_params) + contract.check(down_extras, global_params, "download")
            updates: list[ClientUpdate] = []
            losses: list[float] = []
            for client in selected:
                steps = _check_steps(
                    recipe.local_steps(round_idx, client, budget.local_steps), budget.local_steps
                )
                lr = float(recipe.client_lr(round_idx, client))
                if not math.isfinite(lr) or lr < 0:
                    raise TrainingFailure(f"client_lr returned {lr!r} in round {round_idx}")
                load(global_params, client)
                torch.manual_seed(_client_round_seed(seed, round_idx, client))
                # Each client gets its own dicts: a shared dict would be a channel between clients.
                ctx = LocalContext(
                    round_idx,
                    client,
                    dict(global_params),
                    client_states[client],
                    len(train[client]),
                    lr=lr,
                    num_steps=steps,
                    server_extras=dict(down_extras),
                )
                module.ctx = ctx
                shared = [*global_params.values(), *down_extras.values()]
                protected = _versions(params) + _versions(shared)
                forward_calls[0] = 0
                loss = None
                for step in range(steps):
                    loss = module.training_step(next_batch(client), step)
                    loss.backward()
                    _sgd_step(params, lr)
                expected = [v + steps for v in protected[: len(params)]] + protected[len(params) :]
                if _versions(params) + _versions(shared) != expected:
                    raise TrainingFailure(
                        f"client {client}, round {round_idx}: the recipe modified model parameters, "
                        "global parameters or broadcast tensors in place; only the optimizer step may do that"
                    )
                if any(ctx.global_params.get(k) is not v for k, v in global_params.items()) or any(
                    ctx.server_extras.get(k) is not v for k, v in down_extras.items()
                ):
                    raise TrainingFailure(
                        f"client {client}, round {round_idx}: the recipe replaced entries of "
                        "ctx.global_params or ctx.server_extras; what the server sent is read-only"
                    )
                if forward_calls[0] != steps:
                    raise TrainingFailure(
                        f"client {client}, round {round_idx}: {forward_calls[0]} forward passes for {steps} "
                        "steps; the budget allows one forward pass per local step"
                    )
                if loss is not None:
                    last = float(loss.detach())
                    if not math.isfinite(last):
                        raise TrainingFailure(f"non-finite loss for client {client} in round {round_idx}")
                    losses.append(last)
                result.steps_per_client[client] += steps
                with torch.no_grad():
                    delta = {n: p.detach() - global_params[n] for n, p in zip(names, params, strict=True)}
                    client_buffers[client] = [b.detach().clone() for b in buffers]
                extras = recipe.client_extras(delta, ctx)
                up_bytes = _nbytes(delta) + contract.check(extras, global_params, "upload")
                updates.append(ClientUpdate(client, delta, len(train[client]), steps, dict(extras)))
                result.bytes_down += down_bytes
                result.bytes_up += up_bytes
            global_params = _check_params(
                recipe.aggregate(global_params, updates, server_state), global_params, "aggregate"
            )
            record: dict[str, Any] = {
                "round": round_idx + 1,
                "train_loss": sum(losses) / len(losses) if losses else math.nan,
            }
            if (round_idx + 1) % validate_every == 0 or round_idx + 1 == budget.rounds:
                load(global_params, 0)
                with guard.allow():
                    evaluation = profile.evaluate(model, monitor)
                record["val"] = evaluation.mean
                record["val_per_client"] = evaluation.per_client
                module.train()
            result.curve.append(record)
            _log(writer, record, profile)
            if on_round is not None:
                on_round(record)
    finally:
        guard.__exit__(None, None, None)
        if writer is not None:
            writer.close()

    load(global_params, 0)  # FLamby evaluates client 0's copy: global parameters, client 0's buffers
    result.state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    result.seconds = time.perf_counter() - start
    return result


def _writer(log_dir: str | Path | None):
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))


def _log(writer, record: dict[str, Any], profile: Profile) -> None:
    if writer is None:
        return
    step = record["round"]
    if math.isfinite(record["train_loss"]):
        writer.add_scalar("train/loss", record["train_loss"], step)
    if "val" in record:
        writer.add_scalar(f"val/{profile.metric_name}", record["val"], step)
        for name, value in zip(profile.training_client_names, record["val_per_client"], strict=True):
            if math.isfinite(value):
                writer.add_scalar(f"val_client/{name}", value, step)
