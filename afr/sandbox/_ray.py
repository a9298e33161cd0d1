"""Runs on a Ray cluster: :class:`RayPool` sends each :class:`RunJob` to a sandbox pool on one of its nodes.

Each node of the cluster gets one Ray actor, pinned to it, that owns a :class:`SandboxPool` of its own: its
own zygote, forked children, namespaces, seccomp filter and limits. Ray only carries the job there and the
result back; no recipe code ever runs in a Ray worker itself, so every guarantee of the sandbox holds on every
node. The driver (the campaign's process) dispatches at most ``workers`` runs at a time, each to the least
busy node with a free slot.

A node that dies takes its actor, its zygote (stdin EOF) and its children with it; each run it held is sent
again to a surviving node, inside the same :meth:`RayPool.submit` future, so the caller sees one outcome per
job: nothing is recorded or charged twice. Ray itself is imported only here, on first use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import os
import platform
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..engine import RunResult
from ..errors import ConfigError
from ._base import RunPool
from ._jobs import RunJob
from ._pool import _ISOLATION_WANTED, SandboxClosed, SandboxPool

__all__ = ["RayPool", "check_num_gpus", "check_ray_address", "import_ray", "node_slots", "slot_devices"]

log = logging.getLogger("afr.sandbox")

_CLOSE_TIMEOUT_S = 10.0


def import_ray() -> Any:
    """The ``ray`` module, or one clear :class:`ConfigError` if it is not installed."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            f"campaign.executor=ray needs Ray, which is not installed here ({exc})",
            where="campaign.executor=ray",
            fix="pip install 'afr[ray]' (on the driver and on every node), or use campaign.executor=local",
        ) from exc
    return ray


def check_ray_address(address: str | None, timeout_s: float = 10.0) -> None:
    """Refuse, in one line, a cluster address nothing answers at: ``ray.init`` itself would retry for minutes.

    ``None`` (a local Ray) and ``auto`` (the cluster this machine belongs to; Ray fails fast without one) are
    not probed; ``HOST:PORT`` and ``ray://HOST:PORT`` get one TCP connection attempt."""
    if address is None or address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"the Ray address {address!r} is not HOST:PORT",
            where="campaign.ray_address=",
            fix="give the head node's address, e.g. campaign.ray_address=10.0.0.1:6379 (or auto, or null)",
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError(
            f"no Ray cluster answers at {address!r} ({exc})",
            where="campaign.ray_address=",
            fix="start the cluster (`ray start --head --port=6379` on the head node) or fix the address; "
            "campaign.ray_address=null runs a local Ray",
        ) from exc


def check_num_gpus(num_gpus: float) -> float:
    """``num_gpus`` per run, checked: 0 (CPU), a fraction below 1 (runs share a GPU) or a whole number."""
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, int | float) or not math.isfinite(num_gpus):
        raise ValueError(f"num_gpus must be a number >= 0, got {num_gpus!r}")
    if num_gpus < 0 or (num_gpus > 1 and num_gpus != int(num_gpus)):
        raise ValueError(
            f"num_gpus must be 0, a fraction below 1 (runs share a GPU) or a whole number, got {num_gpus!r}"
        )
    return float(num_gpus)


def _runs_per_gpu(num_gpus: float) -> int:
    return max(1, int(1 / num_gpus + 1e-9))


def node_slots(resources: dict[str, float], workers: int, num_gpus: float) -> int:
    """How many runs a node with ``resources`` (Ray's totals) takes at once: one CPU per run, and
    ``num_gpus`` GPUs per run when asked; never more than ``workers``."""
    cpus = int(resources.get("CPU", 0))
    if num_gpus <= 0:
        return min(workers, cpus)
    gpus = int(resources.get("GPU", 0))
    capacity = gpus // int(num_gpus) if num_gpus >= 1 else gpus * _runs_per_gpu(num_gpus)
    return min(workers, cpus, capacity)


def _actor_gpus(slots: int, num_gpus: float) -> int:
    """Whole GPUs the node's actor holds for ``slots`` runs of ``num_gpus`` each."""
    if num_gpus <= 0:
        return 0
    if num_gpus >= 1:
        return slots * int(num_gpus)
    return math.ceil(slots / _runs_per_gpu(num_gpus))


def slot_devices(gpu_ids: Sequence[int | str], slots: int, num_gpus: float) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` of each worker slot, from the GPUs Ray gave the node's actor: ``num_gpus``
    of them per slot, or (a fraction) ``1 / num_gpus`` slots sharing one."""
    ids = [str(i) for i in gpu_ids]
    if num_gpus <= 0 or not ids:
        return []
    if num_gpus >= 1:
        per = int(num_gpus)
        return [",".join(ids[i * per : (i + 1) * per]) for i in range(slots)]
    share = _runs_per_gpu(num_gpus)
    return [ids[min(i // share, len(ids) - 1)] for i in range(slots)]


class NodeSandbox:
    """One node's sandbox (runs as a Ray actor pinned to the node): a :class:`SandboxPool`, hence a zygote,
    of ``slots`` workers. Its methods only hand jobs to that pool; recipe code runs in the pool's children."""

    def __init__(self, slots: int, num_gpus: float, pool_kwargs: dict[str, Any]) -> None:
        import ray

        devices = slot_devices(ray.get_gpu_ids(), slots, num_gpus) if num_gpus > 0 else []
        self.node_id = ray.get_runtime_context().get_node_id()
        self.pool = SandboxPool(slots, devices=devices or None, **pool_kwargs)

    def warm(self, timeout_s: float | None = None) -> dict[str, Any]:
        info = self.pool.warm(timeout_s)
        return {
            **info,
            "node_id": self.node_id,
            "host": platform.node(),
            "slots": self.pool.workers,
            "devices": list(self.pool.devices),
            "euid": os.geteuid(),
        }

    def run(self, job: RunJob) -> RunResult:
        return self.pool.run(job)

    def close(self) -> None:
        self.pool.close()


@dataclass
class _Item:
    job: RunJob
    future: Future[RunResult]
    submitted: float
    losses: int = 0
    """How many times a node died (or its actor was lost) while running this job."""


@dataclass
class _Node:
    node_id: str
    actor: Any
    slots: int
    order: int
    ready: bool = False
    dead: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    running: set[int] = field(default_factory=set)


class RayPool(RunPool):
    """Runs :class:`RunJob` s on a Ray cluster, each in the sandbox of the node it lands on; the same public
    interface as :class:`SandboxPool` (``submit``, ``run``, ``map``, ``warm``, ``close``, ``closed``,
    ``workers``).

    ``address``: None starts a new local Ray instance (``ray.init(address="local")``: never another cluster
    running on this machine); a string joins a running cluster (``ray.init(address=...)``, e.g. ``"auto"`` or
    ``"10.0.0.1:6379"``). If Ray is already initialised in this process, that session is used and left running
    by :meth:`close`. ``workers``: runs in flight at most,
    cluster-wide. ``num_gpus``: GPUs per run (a fraction below 1 lets runs share one); each node takes as many
    runs as its CPUs (one per run) and GPUs allow. New nodes are picked up as they join (every ``refresh_s``).

    A run whose node dies is sent to another node (at most ``max_node_losses`` times; then it is ``crashed``);
    the caller never sees the lost attempt. With no node alive for ``node_wait_s`` the waiting runs end
    :class:`SandboxClosed`: not run, to be run again (a campaign keeps them reserved).
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        address: str | None = None,
        num_gpus: float = 0.0,
        extra_read_roots: Iterable[str | os.PathLike[str]] = (),
        start_timeout_s: float = 120.0,
        max_payload_mb: int = 256,
        isolate: bool = True,
        perturb_freed_memory: bool = True,
        node_wait_s: float = 120.0,
        max_node_losses: int = 3,
        refresh_s: float = 2.0,
    ) -> None:
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        self.workers = workers
        self.num_gpus = check_num_gpus(num_gpus)
        self.address = address
        self.start_timeout_s = start_timeout_s
        self.node_wait_s = node_wait_s
        self.max_node_losses = max_node_losses
        self.refresh_s = refresh_s
        self._pool_kwargs: dict[str, Any] = {
            "extra_read_roots": [os.fspath(r) for r in extra_read_roots],
            "start_timeout_s": start_timeout_s,
            "max_payload_mb": max_payload_mb,
            "isolate": isolate,
            "perturb_freed_memory": perturb_freed_memory,
        }
        self._ray = ray = import_ray()
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            check_ray_address(address)
            options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
            if address is None:
                options["include_dashboard"] = False
            try:
                # "local": a new instance even if another Ray runs on this machine — without an address,
                # ray.init() joins the latest cluster started here (/tmp/ray/ray_current_cluster), and a
                # campaign that asked for a local Ray would run on someone else's cluster.
                ray.init(address=address if address is not None else "local", **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(
                    f"could not connect to the Ray cluster at {address!r}: {exc}",
                    where="campaign.ray_address=",
                    fix="start the cluster (`ray start --head` on one node, then "
                    "`ray start --address=<head>:6379` on the others) and give its address, "
                    "or campaign.ray_address=null for a local Ray",
                ) from exc
        totals = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if not any(node_slots(resources, workers, self.num_gpus) for resources in totals):
            if self._owns_ray:
                ray.shutdown()
            seen = ", ".join(f"{r.get('CPU', 0):g} CPU + {r.get('GPU', 0):g} GPU" for r in totals) or "none"
            raise ConfigError(
                f"no node of the Ray cluster can take a run: each needs 1 CPU and num_gpus={num_gpus:g} "
                f"GPU(s) per run; its nodes have {seen}",
                where="campaign.num_gpus= / campaign.ray_address=",
                fix="start nodes with GPUs (`ray start ... --num-gpus=N`) or lower campaign.num_gpus",
            )
        self._remote_class = ray.remote(NodeSandbox)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closed = False
        self._events: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._queue: deque[_Item] = deque()
        self._inflight: dict[int, tuple[_Item, str]] = {}
        self._nodes: dict[str, _Node] = {}
        self._tokens = itertools.count(1)
        self._refreshed = False
        self._no_node_since: float | None = None
        self.requeued = 0
        """Runs sent again because the node running them was lost (diagnostics)."""
        self._thread = threading.Thread(target=self._loop, name="afr-ray-dispatch", daemon=True)
        self._thread.start()

    # --- public API (as SandboxPool) ---------------------------------------------------------------

    def submit(self, job: RunJob) -> Future[RunResult]:
        """Queue ``job``; the future resolves with its :class:`RunResult`, whatever the job did."""
        if not isinstance(job, RunJob):
            raise TypeError(f"submit() takes a RunJob, got {type(job).__name__}")
        future: Future[RunResult] = Future()
        future.set_running_or_notify_cancel()
        with self._lock:
            if self._closed:
                raise SandboxClosed("the Ray sandbox pool is closed")
            self._queue.append(_Item(job, future, time.perf_counter()))
        self._events.put(("submit",))
        return future

    def warm(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait until every node found so far has its zygote ready (or failed); returns the first ready node's
        report (pid, isolation, ...) with ``nodes``: every ready node's report by node id."""
        deadline = time.monotonic() + (self.start_timeout_s if timeout_s is None else timeout_s)

        def settled() -> bool:
            return self._refreshed and all(n.ready or n.dead for n in self._nodes.values())

        with self._changed:
            while not (self._closed or settled()) and time.monotonic() < deadline:
                self._changed.wait(min(0.5, max(0.0, deadline - time.monotonic())))
            if self._closed:
                raise SandboxClosed("the Ray sandbox pool is closed")
            ready = [n for n in sorted(self._nodes.values(), key=lambda n: n.order) if n.ready and not n.dead]
            errors = [f"{n.node_id[:12]}: {n.error}" for n in self._nodes.values() if n.error]
        if not ready:
            reasons = "; ".join(errors) or "no node of the cluster has a CPU (and a GPU, if asked) for a run"
            raise RuntimeError(f"no Ray node could start a sandbox: {reasons}")
        return {**ready[0].info, "nodes": {n.node_id: dict(n.info) for n in ready}}

    @property
    def zygote_pids(self) -> list[int]:
        """The zygote pid of each ready node (each on its own host: for diagnostics)."""
        with self._lock:
            return [int(n.info["pid"]) for n in self._nodes.values() if n.ready and "pid" in n.info]

    def nodes(self) -> dict[str, dict[str, Any]]:
        """Each node this pool has used: ``ready``, ``dead``, ``slots``, runs ``running``, ``error``."""
        with self._lock:
            return {
                n.node_id: {
                    "ready": n.ready,
                    "dead": n.dead,
                    "slots": n.slots,
                    "running": len(n.running),
                    "error": n.error,
                }
                for n in self._nodes.values()
            }

    def in_flight(self) -> dict[str, str]:
        """``job_id`` -> id of the node running it, for each job handed to a node and not yet back."""
        with self._lock:
            return {item.job.job_id: node_id for item, node_id in self._inflight.values()}

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (the pool runs nothing more)."""
        return self._closed

    def close(self) -> None:
        """Stop every node's sandbox; unfinished futures raise :class:`SandboxClosed` (interrupted, no
        outcome). Safe to call from any thread, any number of times."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._changed.notify_all()
        self._events.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=_CLOSE_TIMEOUT_S)
        with self._lock:
            items = [*self._queue, *(item for item, _ in self._inflight.values())]
            self._queue.clear()
            self._inflight.clear()
            nodes = list(self._nodes.values())
        for item in items:
            if not item.future.done():
                item.future.set_exception(
                    SandboxClosed("the Ray sandbox pool closed before the run finished")
                )
        ray = self._ray
        closing = [n.actor.close.remote() for n in nodes if not n.dead]
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=_CLOSE_TIMEOUT_S)
        for node in nodes:
            with contextlib.suppress(Exception):  # the actor or its node is gone already
                ray.kill(node.actor, no_restart=True)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()

    # --- the dispatcher thread -------------------------------------------------------------------------

    def _loop(self) -> None:
        next_refresh = 0.0
        while True:
            try:
                if time.monotonic() >= next_refresh:
                    self._refresh()
                    next_refresh = time.monotonic() + self.refresh_s
                self._dispatch()
            except Exception:  # noqa: BLE001 -- e.g. the GCS briefly out of reach: try again next tick
                log.exception("afr.sandbox: the Ray dispatcher failed; trying again")
                next_refresh = time.monotonic() + self.refresh_s
            try:
                event = self._events.get(timeout=max(0.01, next_refresh - time.monotonic()))
            except queue.Empty:
                continue
            while event is not None:
                self._handle(event)
                try:
                    event = self._events.get_nowait()
                except queue.Empty:
                    break
            if event is None or self._closed:
                return

    def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "warm":
            self._on_warm(event[1], event[2])
        elif kind == "done":
            self._on_done(event[1], event[2])

    def _refresh(self) -> None:
        """Start a node sandbox on each live node without one; mark the nodes Ray reports dead."""
        ray = self._ray
        alive = {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        for node_id, node in list(self._nodes.items()):
            if node_id not in alive and not node.dead:
                self._mark_dead(node, "the node left the cluster")
        for node_id, info in alive.items():
            if node_id in self._nodes or self._closed:
                continue
            slots = node_slots(info.get("Resources", {}), self.workers, self.num_gpus)
            if slots < 1:
                continue  # no CPU (or no GPU, when runs need one): looked at again on the next refresh
            actor = self._remote_class.options(
                num_cpus=slots,
                num_gpus=_actor_gpus(slots, self.num_gpus),
                max_concurrency=slots + 4,  # runs in parallel, plus warm/close
                max_restarts=0,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote(slots, self.num_gpus, self._pool_kwargs)
            with self._changed:
                node = _Node(node_id, actor, slots, order=len(self._nodes))
                self._nodes[node_id] = node
            warm = actor.warm.remote(self.start_timeout_s).future()
            warm.add_done_callback(lambda f, n=node_id: self._events.put(("warm", n, f)))
        with self._changed:
            self._refreshed = True
            self._changed.notify_all()

    def _on_warm(self, node_id: str, future: Future[Any]) -> None:
        node = self._nodes[node_id]
        try:
            info = future.result()
        except Exception as exc:  # noqa: BLE001 -- the node's zygote could not start, or the node died
            self._mark_dead(node, f"its sandbox did not start: {_brief(exc)}")
            log.warning("afr.sandbox: Ray node %s runs nothing: %s", node_id[:12], node.error)
            return
        with self._changed:
            if not node.dead:
                node.info, node.ready = info, True
            self._changed.notify_all()
        # The node's own pool logs what its zygote could not apply, but in the actor's process: say it here.
        missing = [k for k in _ISOLATION_WANTED if not (info.get("isolation") or {}).get(k)]
        if info.get("euid") == 0 and missing == ["user_namespace"]:
            missing = []  # root needs no user namespace to unshare the others
        if missing and self._pool_kwargs["isolate"]:
            log.warning(
                "afr.sandbox: the sandbox on Ray node %s (%s) runs without %s; the audit hook and resource "
                "limits remain",
                node_id[:12],
                info.get("host", "?"),
                ", ".join(missing),
            )

    def _mark_dead(self, node: _Node, reason: str) -> None:
        with self._changed:
            if node.dead:
                return
            node.dead, node.error = True, reason
            # Its other runs are lost too: sent elsewhere now (their late answers, if any, are ignored).
            orphans = [self._inflight.pop(token)[0] for token in node.running if token in self._inflight]
            node.running.clear()
            self._changed.notify_all()
        with contextlib.suppress(Exception):  # gone already
            self._ray.kill(node.actor, no_restart=True)  # an actor cut off but alive must run nothing more
        for item in orphans:
            self._lost(item, node)

    def _on_done(self, token: int, future: Future[Any]) -> None:
        with self._lock:
            entry = self._inflight.pop(token, None)
            if entry is None:
                return  # closed meanwhile
            item, node_id = entry
            node = self._nodes[node_id]
            node.running.discard(token)
        exceptions = self._ray.exceptions
        try:
            result: RunResult = future.result()
        except exceptions.RayTaskError as exc:
            # The actor's method raised: only its pool being closed under it can do that (a run's own failure
            # is a status). Lost like a node: the run is sent elsewhere.
            self._mark_dead(node, f"its sandbox stopped: {_brief(exc)}")
            self._lost(item, node)
            return
        except (exceptions.RayError, ConnectionError) as exc:
            # The actor, its node or the result object is gone: the run has no outcome; send it elsewhere.
            self._mark_dead(node, f"lost while running: {_brief(exc)}")
            self._lost(item, node)
            return
        if not item.future.done():
            # The node's sandbox timed the run from its fork (as the local pool does): a wait in this pool's
            # queue or Ray's is not the run's time.
            wall = result.wall_s or time.perf_counter() - item.submitted
            item.future.set_result(dataclasses.replace(result, wall_s=wall))

    def _lost(self, item: _Item, node: _Node) -> None:
        item.losses += 1
        if item.losses >= self.max_node_losses:
            message = (
                f"{item.losses} Ray nodes were lost while running this job (last: {node.node_id[:12]}, "
                f"{node.error}); it is not sent again"
            )
            wall = time.perf_counter() - item.submitted
            outcome = RunResult(status="crashed", message=message, wall_s=wall)
            if not item.future.done():
                item.future.set_result(outcome)
            return
        log.warning(
            "afr.sandbox: job %s lost with Ray node %s (%s); sending it to another node",
            item.job.job_id,
            node.node_id[:12],
            node.error,
        )
        with self._lock:
            self.requeued += 1
            self._queue.appendleft(item)  # first in line: it was submitted before the waiting ones

    def _dispatch(self) -> None:
        """Hand queued jobs to the least busy ready nodes, ``workers`` in flight at most."""
        now = time.monotonic()
        while True:
            with self._lock:
                if self._closed or not self._queue:
                    self._no_node_since = None
                    return
                usable = [n for n in self._nodes.values() if n.ready and not n.dead]
                starting = any(not n.ready and not n.dead for n in self._nodes.values())
                if not usable and not starting:
                    self._no_node_since = self._no_node_since or now
                    if now - self._no_node_since >= self.node_wait_s:
                        self._starve()
                    return
                self._no_node_since = None
                free = [n for n in usable if len(n.running) < n.slots]
                if not free or len(self._inflight) >= self.workers:
                    return
                node = min(free, key=lambda n: (len(n.running) / n.slots, n.order))
                item = self._queue.popleft()
                token = next(self._tokens)
                self._inflight[token] = (item, node.node_id)
                node.running.add(token)
            future = node.actor.run.remote(item.job).future()
            future.add_done_callback(lambda f, t=token: self._events.put(("done", t, f)))

    def _starve(self) -> None:
        """No node was alive for ``node_wait_s``: the waiting runs end, not run (call with the lock held)."""
        reason = SandboxClosed(
            f"no Ray node could take a run for {self.node_wait_s:g} s: the run did not happen "
            "(a campaign keeps it reserved; the same command runs it again)"
        )
        items, self._queue = list(self._queue), deque()
        for item in items:
            if not item.future.done():
                item.future.set_exception(reason)


def _brief(exc: BaseException, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"
