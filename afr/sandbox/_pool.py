"""The parent side: :class:`SandboxPool` starts the zygote, submits jobs and resolves futures."""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import logging
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..engine import STATUSES, RunResult
from ._base import RunPool
from ._jobs import FRAME, RunJob, encode_request

__all__ = ["SandboxClosed", "SandboxPool"]

log = logging.getLogger("afr.sandbox")

_ZYGOTE_MODULE = "afr.sandbox._zygote"
_STOP_TIMEOUT_S = 10.0
RUN_NICENESS = 5
"""How much nicer (lower in CPU priority) a sandboxed run is than the campaign process by default."""
MALLOC_PERTURB_BYTE = 0xA5
_ISOLATION_WANTED = ("user_namespace", "no_network", "readonly_fs", "seccomp")
_warned_isolation = False


def parse_devices(devices: Sequence[int | str] | None) -> list[str]:
    """``devices`` as ``CUDA_VISIBLE_DEVICES`` values, checked: whole numbers >= 0 (or comma lists)."""
    if devices is None:
        return []
    if isinstance(devices, str | int):
        devices = [devices]
    parsed = []
    for device in devices:
        text = str(device).strip()
        if isinstance(device, bool) or not text or not all(p.strip().isdigit() for p in text.split(",")):
            raise ValueError(
                f"devices: {device!r} is not a CUDA device index; give whole numbers such as [0, 1] "
                "(worker i uses devices[i % len(devices)])"
            )
        parsed.append(",".join(p.strip() for p in text.split(",")))
    return parsed


@functools.cache
def _afr_import_root() -> str | None:
    """The folder to put on PYTHONPATH for a clean interpreter to find ``afr``, or None if it already does."""
    import afr

    root = str(Path(afr.__file__).resolve().parent.parent)
    check = "import importlib.util as u, sys; sys.exit(u.find_spec('afr') is None)"
    probe = subprocess.run(
        [sys.executable, "-s", "-P", "-c", check],
        env={"PATH": os.environ.get("PATH") or os.defpath, "LANG": "C.UTF-8"},
        cwd=tempfile.gettempdir(),
        capture_output=True,
        timeout=120,
    )
    return None if probe.returncode == 0 else root


def clean_environment(home: str, perturb_freed_memory: bool = True) -> dict[str, str]:
    """The zygote's whole environment: nothing of the parent's but PATH and ``CUDA_VISIBLE_DEVICES`` (no
    keys, tokens, proxies). The device selection is honoured, not stripped: it says which GPUs this
    campaign may use (a per-worker ``devices`` list of the pool overrides it in each child)."""
    env = {
        "PATH": os.environ.get("PATH") or os.defpath,
        "LANG": "C.UTF-8",
        "HOME": home,
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # torch.cuda.is_available() (device=auto) asks NVML instead of initialising the CUDA driver: the
        # zygote and the loaders it forks must never initialise CUDA, or no forked child could use it.
        "PYTORCH_NVML_BASED_CUDA_CHECK": "1",
    }
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = os.environ["CUDA_VISIBLE_DEVICES"]
    if perturb_freed_memory:
        # glibc fills every freed heap block with this byte (and new malloc blocks with its complement):
        # defence in depth behind the loader process (see _zygote), so that no uninitialised allocation
        # a candidate makes returns what its own process freed before (another client's batch or update).
        # Large blocks come from mmap and are zeroed by the kernel anyway. It costs CPU time on runs
        # that allocate many small tensors (measured: shakespeare +20-30 %, tcga_brca within noise).
        env["MALLOC_PERTURB_"] = str(MALLOC_PERTURB_BYTE)
    root = _afr_import_root()
    if root is not None:
        env["PYTHONPATH"] = root
    return env


class SandboxClosed(RuntimeError):
    """The pool was closed before a job ended: the job has no outcome (it was interrupted, not run).

    Raised by :meth:`SandboxPool.submit` / :meth:`~SandboxPool.warm` on a closed pool and set on every future
    still unresolved when :meth:`SandboxPool.close` stops the zygote. A caller must not record it as the
    run's end (a Ctrl-C is not the candidate's crash): the run never finished and can be run again."""


@dataclass
class _Pending:
    job: RunJob
    future: Future[RunResult]
    submitted: float
    pid: int | None = None
    """The sandboxed child's pid once the zygote forked it."""
    started: float | None = None
    """When the zygote forked the child (``time.monotonic``, stamped by the zygote): a run's wall time counts
    from here, not from ``submitted`` — a job queued behind busy workers has not started."""

    def wall(self, now: float) -> float:
        return now - (self.started if self.started is not None else self.submitted)


@dataclass
class _Zygote:
    """One incarnation of the zygote process and the threads that talk to it."""

    proc: subprocess.Popen[bytes]
    ready: threading.Event = field(default_factory=threading.Event)
    dead: threading.Event = field(default_factory=threading.Event)
    info: dict[str, Any] = field(default_factory=dict)
    pending: dict[int, _Pending] = field(default_factory=dict)
    outbox: queue.SimpleQueue[bytes | None] = field(default_factory=queue.SimpleQueue)
    threads: list[threading.Thread] = field(default_factory=list)
    watchdog: threading.Timer | None = None


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size) if size else b""
    return data if data is not None and len(data) == size else None


def _decode(payload: bytes) -> dict[str, Any]:
    """A child's result bytes -> plain data, loaded ``weights_only``: nothing a child wrote runs here."""
    import torch

    data = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    if not isinstance(data, dict):
        raise ValueError("the result is not a dict")
    state = data.get("state_dict")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and type(v) is torch.Tensor for k, v in state.items()
    ):
        raise ValueError("state_dict is not a dict of tensors")
    curve, steps = data.get("curve"), data.get("steps_per_client")
    if not isinstance(curve, list) or not all(isinstance(r, dict) for r in curve):
        raise ValueError("curve is not a list of dicts")
    if not isinstance(steps, list) or not all(isinstance(s, int) for s in steps):
        raise ValueError("steps_per_client is not a list of integers")
    for key, kind in (("model_variant", str), ("bytes_up", int), ("bytes_down", int), ("seconds", float)):
        if not isinstance(data.get(key), kind):
            raise ValueError(f"{key} is not a {kind.__name__}")
    return data


def _stop_and_remove(procs: list[subprocess.Popen[bytes]], home: str) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()  # its children follow (PR_SET_PDEATHSIG)
            proc.wait()
    shutil.rmtree(home, ignore_errors=True)


class SandboxPool(RunPool):
    """Runs :class:`RunJob` s in sandboxed children forked from one warm zygote process.

    Starting the pool costs one interpreter start and the torch import (a few seconds, in the
    background; :meth:`warm` waits for it); each job then costs a fork. At most ``workers`` jobs
    train at once; the rest queue in the zygote. If the zygote dies, the futures it held resolve
    with status ``"crashed"`` and a new zygote starts.

    ``perturb_freed_memory`` (default on) sets ``MALLOC_PERTURB_`` in the zygote and its children; turn it
    off to trade that defence in depth for speed on allocation-heavy profiles (the loader process alone
    keeps test and held-out bytes out of every worker).

    ``devices`` (e.g. ``[0, 1]``): worker slot i runs its children with ``CUDA_VISIBLE_DEVICES`` set to
    ``devices[i % len(devices)]`` (an entry may itself be a list such as ``"0,1"``); None (the default)
    leaves the parent's ``CUDA_VISIBLE_DEVICES``, if any, to every child.

    ``niceness``: each sandboxed run is this much nicer than the campaign (``os.nice`` in the child; 0 keeps
    its priority). The parent proposes, validates and records on the same cores as the runs: when the runs
    starve it, it falls behind in handing out the next jobs and a worker waits with nothing to do.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        extra_read_roots: Iterable[str | os.PathLike[str]] = (),
        start_timeout_s: float = 120.0,
        max_payload_mb: int = 256,
        isolate: bool = True,
        perturb_freed_memory: bool = True,
        devices: Sequence[int | str] | None = None,
        niceness: int = RUN_NICENESS,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.devices = parse_devices(devices)
        self.workers = workers
        self.start_timeout_s = start_timeout_s
        self._extra_roots = [str(Path(r).resolve()) for r in extra_read_roots]
        self._max_payload_mb = max_payload_mb
        self._isolate = isolate
        self._perturb = perturb_freed_memory
        self._niceness = max(0, int(niceness))
        self._lock = threading.Lock()
        self._keys = itertools.count(1)
        self._closed = False
        self._stderr: deque[str] = deque(maxlen=200)
        self._home = tempfile.mkdtemp(prefix="afr-sandbox-")
        self._procs: list[subprocess.Popen[bytes]] = []
        # Also at interpreter exit for a pool never closed: stop its zygotes before removing their HOME.
        self._cleanup = weakref.finalize(self, _stop_and_remove, self._procs, self._home)
        self.zygote_pids: list[int] = []
        """Every zygote this pool started, oldest first (for diagnostics)."""
        with self._lock:
            self._zygote: _Zygote | None = self._spawn()

    # --- public API --------------------------------------------------------------------------------

    def submit(self, job: RunJob) -> Future[RunResult]:
        """Queue ``job``; the future resolves with its :class:`RunResult`, whatever the job did."""
        if not isinstance(job, RunJob):
            raise TypeError(f"submit() takes a RunJob, got {type(job).__name__}")
        future: Future[RunResult] = Future()
        future.set_running_or_notify_cancel()  # a job handed to the zygote cannot be withdrawn
        with self._lock:
            if self._closed:
                raise SandboxClosed("the sandbox pool is closed")
            zygote = self._current()
            key = next(self._keys)
            zygote.pending[key] = _Pending(job, future, time.monotonic())
            zygote.outbox.put(encode_request(("job", key, job)))
        return future

    def warm(self, timeout_s: float | None = None) -> dict[str, Any]:
        """Wait until the zygote is ready; returns what it reported (pid, startup_s, isolation, ...)."""
        with self._lock:
            if self._closed:
                raise SandboxClosed("the sandbox pool is closed")
            zygote = self._current()
        deadline = time.monotonic() + (self.start_timeout_s if timeout_s is None else timeout_s)
        while not zygote.ready.wait(0.05):
            if zygote.dead.is_set():
                raise RuntimeError(f"the sandbox zygote failed to start:{self._tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox zygote was not ready in time:{self._tail()}")
        return dict(zygote.info)

    @property
    def zygote_pid(self) -> int | None:
        """Pid of the current zygote (None when none is running)."""
        zygote = self._zygote
        return zygote.proc.pid if zygote is not None else None

    def child_pids(self) -> dict[str, int]:
        """``job_id`` -> pid of the sandboxed child running it, for each started job (diagnostics)."""
        with self._lock:
            zygote = self._zygote
            pending = list(zygote.pending.values()) if zygote is not None else []
        return {item.job.job_id: item.pid for item in pending if item.pid is not None}

    def stderr_tail(self, lines: int = 20) -> list[str]:
        """The last lines the zygote and its children wrote to stderr."""
        return list(self._stderr)[-lines:]

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (the pool runs nothing more)."""
        return self._closed

    def close(self) -> None:
        """Stop the zygote and every child; unfinished futures raise :class:`SandboxClosed` (interrupted,
        no outcome). Safe to call from any thread, any number of times."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            zygote, self._zygote = self._zygote, None
        if zygote is not None:
            zygote.outbox.put(None)  # stdin EOF: the zygote kills its children and exits
            try:
                zygote.proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                zygote.proc.kill()
                zygote.proc.wait()
            for thread in zygote.threads:
                thread.join(timeout=_STOP_TIMEOUT_S)
        self._cleanup()

    # --- the zygote's life ---------------------------------------------------------------------------

    def _current(self) -> _Zygote:
        """The live zygote, started if needed (call with the lock held)."""
        if self._zygote is None or self._zygote.dead.is_set():
            self._zygote = self._spawn()
        return self._zygote

    def _spawn(self) -> _Zygote:
        command = [
            sys.executable, "-s", "-P", "-m", _ZYGOTE_MODULE,
            "--workers", str(self.workers), "--max-payload-mb", str(self._max_payload_mb),
            *(f"--read-root={root}" for root in self._extra_roots),
            *(f"--device={device}" for device in self.devices),
            "--niceness", str(self._niceness),
        ]  # fmt: skip
        if not self._isolate:
            command.append("--no-isolate")
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_environment(self._home, self._perturb),
            cwd=self._home,
            close_fds=True,
            start_new_session=True,  # a terminal's Ctrl-C reaches the parent only; it stops the zygote
        )
        zygote = _Zygote(proc)
        self.zygote_pids.append(proc.pid)
        self._procs.append(proc)
        for target, name in ((self._reader, "reader"), (self._writer, "writer"), (self._drain, "stderr")):
            thread = threading.Thread(
                target=target, args=(zygote,), name=f"afr-sandbox-{name}-{proc.pid}", daemon=True
            )
            zygote.threads.append(thread)
            thread.start()
        zygote.watchdog = threading.Timer(self.start_timeout_s, self._check_started, args=(zygote,))
        zygote.watchdog.daemon = True
        zygote.watchdog.start()
        return zygote

    def _check_started(self, zygote: _Zygote) -> None:
        if not zygote.ready.is_set() and zygote.proc.poll() is None:
            self._stderr.append(f"[afr.sandbox] zygote not ready after {self.start_timeout_s:g} s: killed")
            zygote.proc.kill()

    def _writer(self, zygote: _Zygote) -> None:
        stdin = zygote.proc.stdin
        assert stdin is not None
        while (item := zygote.outbox.get()) is not None:
            try:
                stdin.write(item)
                stdin.flush()
            except (OSError, ValueError):
                return  # the zygote is gone; the reader fails its futures
        with contextlib.suppress(OSError):
            stdin.close()

    def _drain(self, zygote: _Zygote) -> None:
        stderr = zygote.proc.stderr
        assert stderr is not None
        for raw in iter(lambda: stderr.readline(8192), b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr.append(line)
            log.debug("zygote %d: %s", zygote.proc.pid, line)

    def _reader(self, zygote: _Zygote) -> None:
        stdout = zygote.proc.stdout
        assert stdout is not None
        try:
            while (head := _read_exactly(stdout, FRAME.size)) is not None:
                header_size, payload_size = FRAME.unpack(head)
                header_bytes = _read_exactly(stdout, header_size)
                payload = _read_exactly(stdout, payload_size)
                if header_bytes is None or payload is None:
                    break
                self._on_frame(zygote, json.loads(header_bytes), payload)
        except Exception:
            log.exception("afr.sandbox: reading from the zygote failed")
            zygote.proc.kill()
        finally:
            self._on_death(zygote)

    def _on_frame(self, zygote: _Zygote, header: dict[str, Any], payload: bytes) -> None:
        kind = header.get("type")
        if kind == "ready":
            zygote.info = header
            self._check_isolation(header.get("isolation") or {})
            zygote.ready.set()
            if zygote.watchdog is not None:
                zygote.watchdog.cancel()
        elif kind == "started":
            log.debug(
                "zygote %d forked child %d for job key %d", zygote.proc.pid, header["pid"], header["key"]
            )
            with self._lock:
                started = zygote.pending.get(header["key"])
                if started is not None:
                    started.pid = int(header["pid"])
                    now, at = time.monotonic(), header.get("at")
                    forked = min(float(at), now) if isinstance(at, (int, float)) else now
                    started.started = max(started.submitted, forked)
        elif kind == "result":
            with self._lock:
                pending = zygote.pending.pop(header["key"], None)
            if pending is not None:
                pending.future.set_result(self._outcome(pending, header, payload))

    def _outcome(self, pending: _Pending, header: dict[str, Any], payload: bytes) -> RunResult:
        wall = pending.wall(time.monotonic())
        status = header.get("status")
        message = str(header.get("message", ""))
        if status not in STATUSES:
            return RunResult(status="crashed", message=f"unknown status {status!r}", wall_s=wall)
        if status != "ok":
            return RunResult(status=status, message=message, wall_s=wall)
        try:
            data = _decode(payload)
        except Exception as exc:
            return RunResult(status="crashed", message=f"malformed result: {exc}", wall_s=wall)
        return RunResult(
            status="ok",
            message=message,
            model_variant=data["model_variant"],
            state_dict=data["state_dict"],
            curve=data["curve"],
            steps_per_client=data["steps_per_client"],
            bytes_up=data["bytes_up"],
            bytes_down=data["bytes_down"],
            seconds=data["seconds"],
            engine_path=str(data.get("engine_path", "")),
            engine_note=str(data.get("engine_note", "")),
            wall_s=wall,
        )

    def _on_death(self, zygote: _Zygote) -> None:
        try:
            code = zygote.proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            zygote.proc.kill()
            code = zygote.proc.wait()
        zygote.threads[2].join(timeout=1.0)  # the stderr tail explains the death
        zygote.outbox.put(None)
        if zygote.watchdog is not None:
            zygote.watchdog.cancel()
        with self._lock:
            pending, zygote.pending = zygote.pending, {}
            zygote.dead.set()
            current = self._zygote is zygote
            if current:
                self._zygote = None
            # Restart only a zygote that had worked: one that cannot start would crash-loop.
            if current and not self._closed and zygote.ready.is_set():
                self._zygote = self._spawn()
        now = time.monotonic()
        for item in pending.values():
            if self._closed:
                # Stopped by its owner (Ctrl-C, SIGTERM, the end of a campaign): the run did not end, it
                # was interrupted. Not a status: nothing may record it as the candidate's outcome.
                stopped = SandboxClosed("the sandbox pool was closed before the run finished")
                item.future.set_exception(stopped)
                continue
            message = f"the sandbox zygote died (exit code {code}) during the run:{self._tail(5)}"
            item.future.set_result(RunResult(status="crashed", message=message, wall_s=item.wall(now)))
        if code != 0 and not self._closed:
            log.warning("afr.sandbox: zygote %d exited with code %d", zygote.proc.pid, code)

    def _check_isolation(self, isolation: dict[str, Any]) -> None:
        """Warn once per process where the zygote could not seal itself as intended."""
        global _warned_isolation
        if not self._isolate or _warned_isolation:
            return
        missing = [k for k in _ISOLATION_WANTED if not isolation.get(k)]
        if os.geteuid() == 0 and missing == ["user_namespace"]:
            return  # root needs no user namespace to unshare the others
        if missing:
            _warned_isolation = True
            log.warning(
                "afr.sandbox: the zygote runs without %s (%s); the audit hook and resource limits remain",
                ", ".join(missing),
                isolation.get("seccomp_error") or "the kernel refused the namespaces",
            )

    def _tail(self, lines: int = 10) -> str:
        tail = self.stderr_tail(lines)
        return ("\n  " + "\n  ".join(tail)) if tail else " (no stderr output)"
