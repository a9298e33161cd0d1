"""The federated loop: rounds, client selection, local training, aggregation, validation.

The engine knows no search and charges nothing. It loads only training parts of a profile
(``fit`` + ``val`` while searching, ``train`` + ``val`` for final runs); the test split is
evaluated by the caller on the returned weights.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..errors import TrainingFailure
from ..profiles import Profile
from ..recipe import ClientUpdate, FedAvg, FedProx, LocalContext, Params, Recipe
from ._batched import BatchedLoss, FallBack, FusedLinear, StackedParams, batching_blocker, fused_head
from ._guard import ForwardGuard
from ._integrity import ModelView, PageGuard, ParamSeal, changed_entries, private_copies
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
    # A fresh copy: the server's own tensors (server_state) never alias the engine's global parameters.
    return {k: torch.empty_like(reference[k]).copy_(new[k].detach()) for k in reference}


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
    integrity: bool = True,
    batched: bool = True,
    pages: PageGuard | None = None,
) -> RunResult:
    """Train ``recipe`` on ``profile`` for the profile's budget with one seed.

    ``stage="search"`` trains on ``fit`` (train minus validation); ``stage="final"`` on the whole
    train split. Both report the validation metric per round; neither touches ``test``.
    Same arguments → bit-identical result.

    ``integrity=False`` turns off the parameter-integrity checks and private copies (``_integrity.py``) —
    only to measure what they cost (``benchmarks/candidate_overhead.py``); the results are the same.

    ``batched=True`` trains the selected clients of a round as one computation whenever the run allows it
    (``_batched.py``), else one after another; ``batched=False`` always one after another. The two paths
    draw the same batches from the same initialisation; their results agree to float rounding (the
    batched reductions run in another order). ``result.engine_path`` says which path ran and
    ``result.engine_note`` why the per-client one, if it did.

    ``pages`` (the sandbox's, in its forked children only): write-protect the parameters of large models
    instead of comparing them after every hook (``_integrity.py``); the results are the same.
    """
    if stage not in ("search", "final"):
        raise ValueError(f"stage must be 'search' or 'final', got {stage!r}")
    start = time.perf_counter()
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run(
            profile, recipe, seed, stage, log_dir, validate_every, on_round, start, integrity, batched, pages
        )
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
    integrity: bool,
    batched: bool,
    pages: PageGuard | None,
) -> RunResult:
    writer = _writer(log_dir)
    rounds = profile.budget.rounds
    reported = 0  # rounds already handed to on_round and the log (a restart does not repeat them)
    note = "" if batched else "per-client path requested"
    try:
        while True:
            run = _Federation(profile, recipe, seed, stage, integrity, batched=not note, pages=pages)
            note = note or run.note
            run.guard.__enter__()  # the guard's hook must be removed however the loop ends (see finally)
            try:
                for round_idx in range(rounds):
                    validate = (round_idx + 1) % validate_every == 0 or round_idx + 1 == rounds
                    record = run.round(round_idx, validate)
                    run.result.curve.append(record)
                    if round_idx >= reported:
                        reported += 1
                        _log(writer, record, profile)
                        if on_round is not None:
                            on_round(record)
                break
            except FallBack as signal:
                # Something only the per-client path does exactly (rare: the probe catches the usual
                # cases before round 0): the same run again, one client after another.
                note = f"round {round_idx}: {signal.reason}"
            finally:
                run.guard.__exit__(None, None, None)
                run.release()
    finally:
        if writer is not None:
            writer.close()
    run.result.engine_path = "per-client" if note else "batched"
    mode = run.batched_loss.mode if run.batched_loss is not None else ""
    if mode and getattr(run, "fused", None) is not None:
        mode += FUSED_NOTE  # recorded: its weights differ from autograd's at rounding level only
    run.result.engine_note = note or mode
    return run.finish(start)


FUSED_NOTE = ", closed-form linear steps"
"""Appended to ``engine_note`` (``stacked, closed-form linear steps``) when :class:`FusedLinear` trained."""


class _Federation:
    """One run's state between rounds: the model, each client's batches, buffers and state, the server's.

    The constructor seeds and builds in a fixed order (seed, model, samplers): reordering it would
    change the results.

    With ``integrity`` (always, except to measure its cost) the engine keeps the model's parameters and
    every tensor of its own private: each hook gets copies (per client), ``local_objective`` a read-only
    :class:`ModelView`, and a :class:`ParamSeal` compares the model bit for bit after every hook call (see
    ``_integrity.py`` for why that is complete). The engine's own tensors — ``global_params``, the broadcast
    master ``down``, ``client_buffers`` — are never handed to a hook, so only the engine writes them.
    """

    def __init__(
        self,
        profile: Profile,
        recipe: Recipe,
        seed: int,
        stage: Stage,
        integrity: bool,
        batched: bool = False,
        pages: PageGuard | None = None,
    ) -> None:
        self.profile, self.recipe, self.seed = profile, recipe, seed
        self.train = train = profile.data("fit" if stage == "search" else "train")
        self.monitor = profile.data("val")
        self.budget = budget = profile.budget
        self.num_clients = num_clients = len(train)

        torch.manual_seed(seed)
        variant = recipe.model_variant()
        device = profile.device
        self.model = model = profile.build_model(variant).to(device)
        self.module = ClientModule(model, profile.loss, recipe)
        self.module.train()
        self.autocast = getattr(profile, "autocast", None)
        if self.autocast == "bf16":
            self.module.precision = functools.partial(torch.autocast, device.type, dtype=torch.bfloat16)
        self.names = [n for n, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        self.buffers = [b for _, b in model.named_buffers()]
        self.global_params: Params = {
            n: p.detach().clone() for n, p in zip(self.names, self.params, strict=True)
        }
        self.client_buffers = [[b.detach().clone() for b in self.buffers] for _ in range(num_clients)]
        self.streams = [
            BatchStream(d, budget.batch_size, client_generator(seed, c)) for c, d in enumerate(train)
        ]
        self.next_batch = _batch_source(profile, train, self.streams, seed, device)
        self.select_rng = client_generator(seed, num_clients, stream=1)
        self.client_states: list[dict[str, Any]] = [{} for _ in range(num_clients)]
        self.server_state: dict[str, Any] = {}
        self.result = RunResult(variant, {}, steps_per_client=[0] * num_clients)

        forward_calls = self.forward_calls = [0]

        def count_forward(_module: nn.Module, _inputs: Any) -> None:
            forward_calls[0] += 1

        model.register_forward_pre_hook(count_forward)
        self.contract = profile.contract
        self.guard = ForwardGuard(model)
        self.module.forward_window = self.guard.allow
        self.seal: ParamSeal | None = None
        self.view: ModelView | None = None
        if integrity:
            self.seal = self.module.seal = seal = ParamSeal(model, pages)
            self.view = self.module.model_view = ModelView(model, lambda: seal.where)
        self.protected = self.seal is not None and self.seal.protected
        """Parameters on write-protected pages (``ParamSeal``): the engine writes them in ``writable``."""
        self.stack: StackedParams | None = None
        self.batched_loss: BatchedLoss | None = None
        self.note = "per-client path requested"
        if batched and self.autocast:
            self.note = f"autocast {self.autocast}: the batched path runs in full precision"
        elif batched:
            mode, self.note = batching_blocker(model, profile, train, budget.batch_size, device)
            head, self.fused_note = None, ""
            if not self.note and mode == "stacked":
                head, self.fused_note = fused_head(model, profile, train, budget.batch_size, self.params)
            self.forward_calls[0] = 0
        if not self.note:
            self.stack = StackedParams(self.names, self.params, num_clients, integrity)
            self.all_clients = list(range(num_clients))
            self.row_index: dict[tuple[int, ...], Tensor] = {}
            self.batched_loss = BatchedLoss(model, profile, mode)
            # FedAvg's objective is the task loss itself: nothing to call per client.
            # Two shipped objectives the engine computes for all clients at once instead of calling the hook
            # per client: FedAvg's (the task loss itself) and FedProx's (task loss + mu/2 ||θ - x||², the
            # same function of the same tensors). Any other objective is called per client.
            objective = type(recipe).local_objective
            self.plain_objective = objective is FedAvg.local_objective
            self.proximal_objective = objective is FedProx.local_objective
            self.fused: FusedLinear | None = None
            if head is not None and (self.plain_objective or self.proximal_objective):
                self.fused = FusedLinear(head, self.stack, self.names, model, train)

    def set_where(self, where: str) -> None:
        """Context for integrity messages (``client 3, round 2``)."""
        if self.seal is not None:
            self.seal.where = where
        if self.stack is not None:
            self.stack.where = where

    def release(self) -> None:
        """Drop the model view's bookkeeping and the parameters' write protection (the run is over)."""
        if self.view is not None:
            self.view.release()
        if self.seal is not None:
            self.seal.release()

    def hook(self, name: str, *args: Any) -> Any:
        """Call the recipe's hook ``name``; with integrity on, fail if it changed the model."""
        if self.protected:
            self.seal.label(name)  # type: ignore[union-attr]
        out = getattr(self.recipe, name)(*args)
        if self.seal is not None:
            self.seal.verify(name)
            if self.stack is not None:
                self.stack.verify(name)
        return out

    def copies(self, tensors: Params) -> Params:
        """What a hook receives of the engine's tensors: private clones (with integrity on)."""
        return private_copies(tensors) if self.seal is not None else dict(tensors)

    def load(self, weights: Params, client: int) -> None:
        """``weights`` and the client's own buffers into the model."""
        with torch.no_grad(), self.seal.writable() if self.protected else nullcontext():  # type: ignore[union-attr]
            for name, p in zip(self.names, self.params, strict=True):
                p.copy_(weights[name])
            for b, saved in zip(self.buffers, self.client_buffers[client], strict=True):
                b.copy_(saved)
        if self.seal is not None:
            self.seal.refresh()

    def round(self, round_idx: int, validate: bool) -> dict[str, Any]:
        """Select, broadcast, train every selected client, aggregate, validate if asked: the curve entry."""
        result, num_clients = self.result, self.num_clients
        self.set_where(f"round {round_idx}")
        selected = _check_clients(
            self.hook("select_clients", round_idx, num_clients, self.select_rng), num_clients
        )
        down_extras = self.hook("broadcast", round_idx, self.server_state)
        down_bytes = _nbytes(self.global_params) + self.contract.check(
            down_extras, self.global_params, "download"
        )
        # The engine's master copy: the server's tensors (server_state) stay the server's.
        down = self.copies(down_extras)
        updates: list[ClientUpdate] = []
        losses: list[float] = []
        if self.stack is not None:
            trained = self.train_batched(round_idx, selected, down)
        else:
            trained = (self.train_client(round_idx, client, down) for client in selected)
        for update, loss, up_bytes in trained:
            if loss is not None:
                losses.append(loss)
            updates.append(update)
            result.bytes_down += down_bytes
            result.bytes_up += up_bytes
        self.set_where(f"round {round_idx}")
        new = self.hook("aggregate", self.copies(self.global_params), updates, self.server_state)
        self.global_params = _check_params(new, self.global_params, "aggregate")
        record: dict[str, Any] = {
            "round": round_idx + 1,
            "train_loss": sum(losses) / len(losses) if losses else math.nan,
        }
        if validate:
            self.load(self.global_params, 0)
            with self.guard.allow():
                evaluation = self.profile.evaluate(self.model, self.monitor)
            record["val"] = evaluation.mean
            record["val_per_client"] = evaluation.per_client
            self.module.train()
            if self.seal is not None:
                self.seal.refresh()
        return record

    def train_client(
        self, round_idx: int, client: int, down: Params
    ) -> tuple[ClientUpdate, float | None, int]:
        """One client's local training in one round: its update, its last loss and the upload bytes."""
        budget, global_params, params, seal = self.budget, self.global_params, self.params, self.seal
        protected = self.protected
        self.set_where(f"client {client}, round {round_idx}")
        max_steps = budget.local_steps
        steps = _check_steps(self.hook("local_steps", round_idx, client, max_steps), max_steps)
        lr = float(self.hook("client_lr", round_idx, client))
        if not math.isfinite(lr) or lr < 0:
            raise TrainingFailure(f"client_lr returned {lr!r} in round {round_idx}")
        self.load(global_params, client)
        torch.manual_seed(_client_round_seed(self.seed, round_idx, client))
        # Each client gets its own dicts (and, with integrity, its own tensors): anything shared would be a
        # channel between clients, or from a client to the server.
        sent_params, sent_extras = self.copies(global_params), self.copies(down)
        ctx = LocalContext(
            round_idx,
            client,
            dict(sent_params),  # the engine keeps sent_*: their entries tell a replaced one
            self.client_states[client],
            len(self.train[client]),
            lr=lr,
            num_steps=steps,
            server_extras=dict(sent_extras),
        )
        module, next_batch = self.module, self.next_batch
        module.ctx = ctx
        self.forward_calls[0] = 0
        loss = None
        for step in range(steps):
            loss = module.training_step(next_batch(client), step)  # verifies the seal after local_objective
            loss.backward()
            if protected:
                with seal.writable():  # type: ignore[union-attr]
                    _sgd_step(params, lr)
            else:
                _sgd_step(params, lr)
                if seal is not None:
                    seal.refresh_params()
        self._check_sent(round_idx, client, ctx, sent_params, sent_extras, down, "local_objective")
        if self.forward_calls[0] != steps:
            raise TrainingFailure(
                f"client {client}, round {round_idx}: {self.forward_calls[0]} forward passes for {steps} "
                "steps; the budget allows one forward pass per local step"
            )
        last = None
        if loss is not None:
            last = float(loss.detach())
            if not math.isfinite(last):
                raise TrainingFailure(f"non-finite loss for client {client} in round {round_idx}")
        self.result.steps_per_client[client] += steps
        with torch.no_grad():
            delta = {n: p.detach() - global_params[n] for n, p in zip(self.names, params, strict=True)}
            self.client_buffers[client] = [b.detach().clone() for b in self.buffers]
        return self._upload(round_idx, client, ctx, sent_params, sent_extras, down, delta, steps, last)

    def _upload(
        self,
        round_idx: int,
        client: int,
        ctx: LocalContext,
        sent_params: Params,
        sent_extras: Params,
        down: Params,
        delta: Params,
        steps: int,
        last: float | None,
    ) -> tuple[ClientUpdate, float | None, int]:
        """After a client's local training: its extras (checked), upload bytes and update."""
        global_params, seal = self.global_params, self.seal
        sent_delta = self.copies(delta)
        extras = self.hook("client_extras", sent_delta, ctx)
        self._check_sent(round_idx, client, ctx, sent_params, sent_extras, down, "client_extras")
        if seal is not None:
            problem = changed_entries(sent_delta, sent_delta, delta, "delta")
            if problem:
                raise TrainingFailure(
                    f"client {client}, round {round_idx}: the recipe's client_extras {problem}; the delta "
                    "is what local training produced and read-only (upload anything else as extras)"
                )
        up_bytes = _nbytes(delta) + self.contract.check(extras, global_params, "upload")
        # A private copy of the upload: the client may keep its own tensors, never a path into the server's.
        extras = self.copies(extras)
        return ClientUpdate(client, delta, len(self.train[client]), steps, extras), last, up_bytes

    def train_batched(
        self, round_idx: int, selected: list[int], down: Params
    ) -> list[tuple[ClientUpdate, float | None, int]]:
        """Local training of every selected client as one computation per step (``_batched.py``); the same
        hooks, checks and results as :meth:`train_client` per client, in client order.

        Order of the hook calls: every client's ``local_steps`` and ``client_lr``, then the steps (each
        client's ``local_objective`` in client order within a step), then every client's ``client_extras``.
        Each client's global-RNG stream is its own, seeded as on the per-client path; a schedule hook that
        draws from the global RNG would see another stream than there, so that run restarts per client.
        """
        stack, budget = self.stack, self.budget
        assert stack is not None
        global_params, max_steps = self.global_params, budget.local_steps
        steps: list[int] = []
        lrs: list[float] = []
        ctxs: list[LocalContext] = []
        sent: list[tuple[Params, Params]] = []
        rng_before = torch.get_rng_state()
        for client in selected:
            self.set_where(f"client {client}, round {round_idx}")
            steps.append(_check_steps(self.hook("local_steps", round_idx, client, max_steps), max_steps))
            lr = float(self.hook("client_lr", round_idx, client))
            if not math.isfinite(lr) or lr < 0:
                raise TrainingFailure(f"client_lr returned {lr!r} in round {round_idx}")
            lrs.append(lr)
        if not torch.equal(rng_before, torch.get_rng_state()):
            raise FallBack("local_steps or client_lr drew from the global RNG")
        for client, lr, num_steps in zip(selected, lrs, steps, strict=True):
            sent_params, sent_extras = self.copies(global_params), self.copies(down)
            sent.append((sent_params, sent_extras))
            ctxs.append(
                LocalContext(
                    round_idx,
                    client,
                    dict(sent_params),
                    self.client_states[client],
                    len(self.train[client]),
                    lr=lr,
                    num_steps=num_steps,
                    server_extras=dict(sent_extras),
                )
            )
        # The CPU state torch.manual_seed would give each client (without seeding every device: on a
        # CPU-only run that costs more than a client's round of a small model).
        rng_states = [
            torch.Generator().manual_seed(_client_round_seed(self.seed, round_idx, client)).get_state()
            for client in selected
        ]
        stack.load(global_params)
        # Rows not selected this round get no gradient (and the SGD step leaves them exactly as they are).
        row_lrs = [0.0] * self.num_clients
        for client, lr in zip(selected, lrs, strict=True):
            row_lrs[client] = lr
        last: list[Tensor | None] = [None] * len(selected)
        if self.fused is not None:  # FedAvg's or FedProx's objective on a linear head: no hook until the end
            batches = [self.streams[c].take(n) for c, n in zip(selected, steps, strict=True)]
            mu = float(self.recipe.mu) if self.proximal_objective else None
            last = self.fused.train(selected, batches, lrs, steps, mu, global_params)
            stack.refresh()
        else:
            step_lrs = row_lrs if len(set(lrs)) > 1 else lrs[0]
            one = torch.ones((), dtype=stack.dtype)
            for step in range(max(steps, default=0)):
                active = [i for i, n in enumerate(steps) if n > step]
                total = self._batched_step(round_idx, step, active, selected, ctxs, rng_states, last)
                _backward(total, one)
                stack.sgd_step(step_lrs)
        out = []
        rows = {c: [leaf.detach()[c] for leaf in stack.leaves] for c in selected}
        for i, client in enumerate(selected):
            ctx, (sent_params, sent_extras) = ctxs[i], sent[i]
            ctx.step = max(steps[i] - 1, 0)  # where the per-client path leaves it for client_extras
            self.set_where(f"client {client}, round {round_idx}")
            self._check_sent(round_idx, client, ctx, sent_params, sent_extras, down, "local_objective")
            loss = None
            if last[i] is not None:
                loss = float(last[i])
                if not math.isfinite(loss):
                    raise TrainingFailure(f"non-finite loss for client {client} in round {round_idx}")
            self.result.steps_per_client[client] += steps[i]
            delta = {n: r - global_params[n] for n, r in zip(self.names, rows[client], strict=True)}
            torch.set_rng_state(rng_states[i])  # the client's own stream, as if it had just trained
            out.append(
                self._upload(round_idx, client, ctx, sent_params, sent_extras, down, delta, steps[i], loss)
            )
        return out

    def _batched_step(
        self,
        round_idx: int,
        step: int,
        active: list[int],
        selected: list[int],
        ctxs: list[LocalContext],
        rng_states: list[Tensor],
        last: list[Tensor | None],
    ) -> Tensor:
        """One local step of the ``active`` clients (indices into ``selected``): the summed objective."""
        stack, next_batch = self.stack, self.next_batch
        assert stack is not None
        batches = [next_batch(selected[i]) for i in active]
        first = batches[0][0].shape
        same = True
        for x, _ in batches:  # one profile: only the batch length can differ (a short last batch)
            if x.shape != first:
                same = False
                break
        if same:  # the common case
            groups = [[(i, x, y) for i, (x, y) in zip(active, batches, strict=True)]]
        else:  # a client's short last batch of an epoch: one computation per batch shape
            by_shape: dict[tuple[Any, ...], list[tuple[int, Tensor, Tensor]]] = {}
            for i, (x, y) in zip(active, batches, strict=True):
                by_shape.setdefault((x.shape, y.shape), []).append((i, x, y))
            groups = list(by_shape.values())
        self.forward_calls[0] = 0
        parts: list[Tensor] = []
        for members in groups:
            clients = [selected[i] for i, _, _ in members]
            if clients == self.all_clients:
                rows = stack.leaves
            else:
                index = self.row_index.get(tuple(clients))
                if index is None:
                    index = self.row_index[tuple(clients)] = torch.tensor(clients)
                rows = [leaf.index_select(0, index) for leaf in stack.leaves]
            inputs = torch.stack([x for _, x, _ in members])
            targets = torch.stack([y for _, _, y in members])
            try:
                with self.guard.allow():
                    losses = self.batched_loss(rows, inputs, targets)
            except Exception as exc:  # the probe ran this computation; a batch shape it did not see failed
                raise FallBack(
                    f"batched loss failed on inputs of shape {tuple(inputs.shape)}: {exc}"
                ) from exc
            if self.plain_objective or self.proximal_objective:
                if self.proximal_objective:
                    losses = losses + self.recipe.mu / 2 * self._proximal(rows)
                parts.append(losses.sum())
                for j, (i, _, _) in enumerate(members):
                    if ctxs[i].num_steps == step + 1:
                        last[i] = losses[j].detach()
                continue
            # unbind: one autograd node for all clients' rows (indexing would add one per client, each
            # materialising a gradient the size of the whole stack)
            task_losses, unbound = losses.unbind(0), [leaf.unbind(0) for leaf in stack.leaves]
            for j, (i, _, _) in enumerate(members):
                client = selected[i]
                rows = [u[client] for u in unbound]
                parts.append(
                    self._objective(round_idx, step, client, ctxs[i], task_losses[j], rows, rng_states, i)
                )
                if ctxs[i].num_steps == step + 1:
                    last[i] = parts[-1].detach()
        if self.forward_calls[0] != len(groups):
            raise TrainingFailure(
                f"round {round_idx}, step {step}: {self.forward_calls[0]} forward passes for {len(groups)} "
                "batched steps; the budget allows one forward pass per local step"
            )
        return parts[0] if len(parts) == 1 else torch.stack(parts).sum()

    def _proximal(self, rows: list[Tensor]) -> Tensor:
        """``proximal_term`` of every row at once: sum over parameters of ||row - x||², shape [rows]."""
        total: Tensor | None = None
        for name, row in zip(self.names, rows, strict=True):
            term = (row - self.global_params[name]).pow(2).flatten(1).sum(dim=1)
            total = term if total is None else total + term
        assert total is not None
        return total

    def _objective(
        self,
        round_idx: int,
        step: int,
        client: int,
        ctx: LocalContext,
        task_loss: Tensor,
        rows: list[Tensor],
        rng_states: list[Tensor],
        i: int,
    ) -> Tensor:
        """The recipe's local objective of one client at one step, on the client's parameter ``rows``."""
        stack, seal, batched_loss = self.stack, self.seal, self.batched_loss
        assert stack is not None and batched_loss is not None
        ctx.step = step
        torch.set_rng_state(rng_states[i])
        model = self.model if self.view is None else self.view
        if seal is not None:
            self.set_where(f"client {client}, round {round_idx}")  # the model view's messages read it
        if self.protected:
            seal.label("local_objective")  # type: ignore[union-attr]
        batched_loss.swap(rows)
        try:
            loss = self.recipe.local_objective(task_loss, model, ctx)
        finally:
            batched_loss.restore()
        rng_states[i] = torch.get_rng_state()
        if seal is not None:
            seal.verify("local_objective")
            stack.verify("local_objective")
            stack.check_rows(client, rows, "local_objective")
        if not isinstance(loss, Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise TrainingFailure(
                f"client {client}, round {round_idx}: local_objective must return a one-element tensor "
                f"that depends on the parameters, got {type(loss).__name__}"
                + (f" of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else "")
            )
        if loss.dim():
            loss = loss.reshape(())
        return loss if loss.dtype == task_loss.dtype else loss.to(task_loss.dtype)

    def _check_sent(
        self,
        round_idx: int,
        client: int,
        ctx: LocalContext,
        sent_params: Params,
        sent_extras: Params,
        down: Params,
        hook: str,
    ) -> None:
        """What the server sent (``ctx.global_params``, ``ctx.server_extras``) is read-only: same entries,
        same bits as the engine's own copies."""
        for field, given, sent, reference in (
            ("global_params", ctx.global_params, sent_params, self.global_params),
            ("server_extras", ctx.server_extras, sent_extras, down),
        ):
            label = f"ctx.{field}"
            if self.seal is None:  # without private copies, identity of the entries is all there is to check
                replaced = any(given.get(k) is not v for k, v in sent.items())
                problem = f"replaced entries of {label}" if replaced else ""
            else:
                problem = changed_entries(given, sent, reference, label)
            if problem:
                raise TrainingFailure(
                    f"client {client}, round {round_idx}: the recipe's {hook} {problem}; "
                    "what the server sent is read-only"
                )

    def finish(self, start: float) -> RunResult:
        """The result with the final weights and the time spent.

        FLamby evaluates client 0's copy, so the weights are the global parameters with client 0's buffers.
        """
        self.load(self.global_params, 0)
        result = self.result
        result.state_dict = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
        result.seconds = time.perf_counter() - start
        return result


def _backward(loss: Tensor, one: Tensor) -> None:
    """``loss.backward()`` straight into the autograd engine: for a scalar of the leaves' dtype there is
    nothing for ``torch.autograd.backward``'s argument handling to do, and on small models it costs as much
    as the backward pass itself."""
    run = getattr(getattr(torch.autograd.Variable, "_execution_engine", None), "run_backward", None)
    if run is None or loss.dtype != one.dtype or loss.dim() != 0:
        loss.backward()
        return
    run((loss,), (one,), False, False, (), allow_unreachable=True, accumulate_grad=True)


def _batch_source(
    profile: Profile, train: Sequence[Any], streams: list[BatchStream], seed: int, device: torch.device
) -> Callable[[int], tuple[Tensor, Tensor]]:
    """``next_batch(client)``: the client's next training batch from its stream, transformed and on the
    device."""
    augment_rngs = [client_generator(seed, c, stream=2) for c in range(len(train))]
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

    return next_batch


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
