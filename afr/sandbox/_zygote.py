"""The warm zygote: imports torch once, then forks one sealed child per recipe run.

Run as ``python -m afr.sandbox._zygote`` by :class:`~afr.sandbox.SandboxPool`, with a clean
environment. Protocol (all frames length-prefixed):

* parent -> zygote, on stdin: ``REQUEST`` length + a pickle of ``("job", key, RunJob)``. The parent
  is trusted; stdin EOF means the parent is gone: the zygote kills its children and exits.
* child -> zygote, on a pipe per child: ``CHILD_HEADER`` length + a JSON header (status, message),
  then the bytes of ``torch.save(payload)``. The zygote never unpickles them.
* zygote -> parent, on stdout: ``FRAME`` (header length, payload length) + a JSON header
  (``ready`` / ``started`` / ``result``) + the child's payload bytes, relayed untouched. The parent
  reads them with ``torch.load(..., weights_only=True)`` only.

The zygote itself never runs candidate code: it forks, enforces the wall-clock timeout, reaps and relays.
It never holds test or held-out bytes either, not even freed: a short-lived *loader* process forked from
it reads a profile's data, drops the test split and the held-out clients, and pickles the profile (the
training parts only) back through a pipe; the loader then exits and the kernel reclaims its pages (which
it zeroes before any other process gets them). Candidate children are forked from the zygote only, so no
uninitialised allocation of theirs can return a test or held-out row. What the child does lives in ``_child``,
how the zygote and its children are sealed (namespaces, mounts, resource limits) in ``_isolation``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import mmap
import os
import pickle
import selectors
import signal
import sys
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from ._child import (
    CANDIDATE_FILE,
    MAX_MESSAGE_CHARS,
    child_main,
    crash_site,
    describe,
    encode_result,
    read_result,
    write_all,
)
from ._guard import denied_module_names
from ._isolation import (
    MARKER_BYTES,
    MIB,
    base_read_roots,
    cpu_limit_s,
    die_with_parent,
    enter_user_namespace,
    install_seccomp,
    isolate,
    load_libc,
    memory_cap_mode,
    oom_kills,
    protection_label,
    resident_bytes,
    vsz_bytes,
    wall_limit_s,
)
from ._jobs import REQUEST, RunJob, encode_frame

__all__ = ["classify_sigkill", "load_training_profile", "load_in_loader", "Zygote", "main"]

PROFILE_CACHE_SIZE = 8
RSS_POLL_S = 0.2
"""How often the zygote checks the resident memory of a child under the ``rss`` memory cap."""


def load_training_profile(
    name: str, cfg: dict[str, Any], data_dir: str | None, import_roots: tuple[str, ...] = ()
) -> Any:
    """The profile a child trains on: the training parts loaded, the test split dropped for good.

    The class is the one ``cfg`` names with ``_target_``; ``import_roots`` go on ``sys.path`` first
    (where a profile package outside afr lives: the zygote's environment has no PYTHONPATH of its own).
    """
    from ..profiles import TRAINING_PARTS, make_profile

    sys.path.extend(root for root in import_roots if root not in sys.path)
    profile = make_profile(name, cfg, data_dir)
    for part in TRAINING_PARTS:
        profile.data(part)
    profile.forget_test()
    return profile


def load_in_loader(
    name: str, cfg: dict[str, Any], data_dir: str | None, import_roots: tuple[str, ...] = (), libc: Any = None
) -> Any:
    """:func:`load_training_profile` run in a forked loader process; this process gets the result only.

    The loader is trusted code (no candidate code has run in it or in this process); it sends back a
    pickle of ``("ok", profile)`` after ``forget_test`` (test and held-out parts dropped), or
    ``("error", message)``. The test split's bytes are only ever in the loader's memory, which dies with it.
    """
    sys.path.extend(root for root in import_roots if root not in sys.path)  # to unpickle the class
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            os.close(read_fd)
            signal.set_wakeup_fd(-1)
            die_with_parent(libc)
            try:
                message: tuple[str, Any] = ("ok", load_training_profile(name, cfg, data_dir, import_roots))
            except Exception as exc:
                message = ("error", describe(exc, None))
            with os.fdopen(write_fd, "wb") as out:
                pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
            code = 0
        finally:
            os._exit(code)  # never unwind into the zygote's code
    os.close(write_fd)
    try:
        with os.fdopen(read_fd, "rb") as stream:
            status, value = pickle.load(stream)
    except (EOFError, pickle.UnpicklingError) as exc:
        status, value = "error", f"the profile loader sent no profile ({type(exc).__name__})"
    finally:
        _, wait_status = os.waitpid(pid, 0)
    if status != "ok":
        raise RuntimeError(value)
    if wait_status != 0:
        raise RuntimeError(f"the profile loader exited with status {wait_status}")
    return value


# --- the zygote ----------------------------------------------------------------------------------


def classify_sigkill(
    peak_mib: int, limit_mib: int, oom_before: int | None, oom_after: int | None
) -> tuple[str, str]:
    """Status and message of a child killed by a SIGKILL the zygote did not send.

    ``memory`` only on evidence of the OOM killer: an OOM-kill counter (the kernel's or the cgroup's, see
    ``oom_kills``) rose while the child ran, or its peak RSS came within 10 % of what it may use
    (``limit_mib``: the zygote's pages at the fork plus the job's ``memory_mb``). Anything else is a kill
    from outside (a user, a supervisor, a test): ``crashed``, not the candidate's memory use."""
    counted = oom_before is not None and oom_after is not None and oom_after > oom_before
    if counted or peak_mib >= 0.9 * limit_mib:
        why = "the OOM-kill counter rose while it ran" if counted else "its memory was nearly exhausted"
        return "memory", (
            f"killed by SIGKILL, by the kernel's OOM killer ({why}; peak RSS {peak_mib} MiB of "
            f"{limit_mib} MiB limit)"
        )
    return (
        "crashed",
        f"killed by SIGKILL from outside the sandbox (peak RSS {peak_mib} MiB of {limit_mib} MiB limit)",
    )


def _cpu_s(child: _Child) -> float:
    """CPU time the child used (from its rusage once reaped, else 0)."""
    return child.rusage.ru_utime + child.rusage.ru_stime if child.rusage else 0.0


@dataclass
class _Child:
    key: int
    job: RunJob
    pid: int
    fd: int
    started: float
    deadline: float
    cpu_limit: float
    data: bytearray = field(default_factory=bytearray)
    eof: bool = False
    status: int | None = None
    rusage: Any = None
    killed: str | None = None
    reported: bool = False
    base_rss: int = 0
    """The zygote's resident bytes at the fork: the child starts with them mapped."""
    oom_kills: int | None = None
    """The OOM-kill counters at the fork (``oom_kills``): tell the OOM killer's SIGKILL from another's."""
    slot: int = 0
    """The worker slot (0 .. workers-1) it runs in: picks its device from ``--device``."""
    rss_limit: int = 0
    """Bytes of resident memory past which the zygote kills it (``rss`` memory cap only; 0: RLIMIT_AS)."""
    peak_rss: int = 0
    marker: mmap.mmap | None = None
    """A page shared with the child: what ran while its parameters were write-protected (PageProtection)."""


class Zygote:
    """The fork server's state: the job queue, running children and the profile cache."""

    def __init__(
        self,
        proto_in: int,
        proto_out: int,
        workers: int,
        roots: list[str],
        max_payload: int,
        libc: Any,
        devices: list[str] | None = None,
        niceness: int = 0,
    ) -> None:
        self.proto_in, self.proto_out = proto_in, proto_out
        self.niceness = niceness
        """Added to each child's nice value (the zygote itself keeps the campaign's priority: it relays)."""
        self.devices = list(devices or [])
        """``CUDA_VISIBLE_DEVICES`` per worker slot: slot i gets ``devices[i % len(devices)]``."""
        self.workers, self.roots, self.max_payload, self.libc = max(1, workers), roots, max_payload, libc
        self.queue: deque[tuple[int, RunJob]] = deque()
        self.running: dict[int, _Child] = {}
        self.profiles: OrderedDict[tuple[str, str, str | None], Any] = OrderedDict()
        self.inbox = bytearray()
        self.selector = selectors.DefaultSelector()
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd does the work

    def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        write_all(self.proto_out, encode_frame(header, payload))

    def serve(self) -> None:
        """Until stdin closes: read jobs, fork children, relay results."""
        self.selector.register(self.proto_in, selectors.EVENT_READ, "parent")
        self.selector.register(self.wake_r, selectors.EVENT_READ, "wake")
        try:
            while True:
                for key, _ in self.selector.select(self._timeout()):
                    if key.data == "parent":
                        if not self._read_parent():
                            return
                    elif key.data == "wake":
                        while True:
                            try:
                                if not os.read(self.wake_r, 4096):
                                    break
                            except BlockingIOError:
                                break
                    else:
                        self._read_child(key.data)
                self._enforce_deadlines()
                self._reap()
                self._dispatch()
        except BrokenPipeError:
            pass
        finally:
            self._kill_all()

    def _timeout(self) -> float:
        now = time.monotonic()
        deadlines = [c.deadline - now for c in self.running.values() if c.killed is None]
        if any(c.rss_limit and c.killed is None for c in self.running.values()):
            deadlines.append(RSS_POLL_S)  # the rss memory cap is a poll
        return max(0.0, min([1.0, *deadlines]))

    def _read_parent(self) -> bool:
        chunk = os.read(self.proto_in, 1 << 20)
        if not chunk:
            return False
        self.inbox += chunk
        while len(self.inbox) >= REQUEST.size:
            (size,) = REQUEST.unpack_from(self.inbox)
            if len(self.inbox) < REQUEST.size + size:
                break
            message = pickle.loads(bytes(self.inbox[REQUEST.size : REQUEST.size + size]))
            del self.inbox[: REQUEST.size + size]
            if message[0] == "job":
                self.queue.append((message[1], message[2]))
        return True

    @staticmethod
    def _profile_key(job: RunJob) -> tuple[str, str, str | None]:
        return job.profile, json.dumps(job.profile_cfg, sort_keys=True, default=repr), job.data_dir

    def _profile(self, job: RunJob, cache_key: tuple[str, str, str | None]) -> Any:
        if cache_key in self.profiles:
            self.profiles.move_to_end(cache_key)
        else:
            self.profiles[cache_key] = load_in_loader(
                job.profile, job.profile_cfg, job.data_dir, job.import_roots, self.libc
            )
            while len(self.profiles) > PROFILE_CACHE_SIZE:
                self.profiles.popitem(last=False)
        return self.profiles[cache_key]

    def _busy(self) -> list[_Child]:
        """The children that hold a worker slot: a child that has relayed its result only exits (its
        ``os._exit`` tears down a zygote-sized address space, ~10-20 ms), so the next job starts meanwhile —
        with runs of 0.1 s, waiting for the reap left the workers idle a fifth of the time. Its deadline and
        memory checks go on until it is reaped."""
        return [child for child in self.running.values() if not child.reported]

    def _dispatch(self, cached_only: bool = False) -> None:
        """Fork queued jobs into free slots; ``cached_only``: stop at a job whose profile is not loaded yet
        (loading takes seconds, and a result waiting to be relayed must not wait for it)."""
        while self.queue and len(self._busy()) < self.workers:
            cache_key = self._profile_key(self.queue[0][1])
            if cached_only and cache_key not in self.profiles:
                return
            key, job = self.queue.popleft()
            try:
                profile = self._profile(job, cache_key)
            except Exception as exc:
                self._result(key, "failed", f"could not load profile {job.profile!r}: {describe(exc, None)}")
                continue
            self._fork(key, job, profile)

    def _fork(self, key: int, job: RunJob, profile: Any) -> None:
        roots = [*self.roots, *job.import_roots, *(str(d) for d in (job.data_dir, profile.data_dir) if d)]
        base_vsz = vsz_bytes()
        slot = self._free_slot()
        visible = self.devices[slot % len(self.devices)] if self.devices else None
        device = getattr(profile, "device", None)
        memory_cap = memory_cap_mode(getattr(device, "type", "cpu"))
        doomed = denied_module_names()
        read_fd, write_fd = os.pipe()
        marker = mmap.mmap(-1, MARKER_BYTES) if self.libc is not None else None  # shared, anonymous
        zygote_pid = os.getpid()
        forked_at = time.monotonic()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                child_main(
                    job,
                    profile,
                    write_fd,
                    roots,
                    base_vsz,
                    zygote_pid,
                    self.libc,
                    doomed,
                    visible,
                    memory_cap,
                    self.niceness,
                    marker,
                )
                code = 0
            finally:
                os._exit(code)  # never unwind into the zygote's loop
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        now = time.monotonic()
        child = _Child(key, job, pid, read_fd, now, now + wall_limit_s(job), cpu_limit_s(job), marker=marker)
        child.base_rss, child.oom_kills, child.slot = resident_bytes(), oom_kills(), slot
        if memory_cap == "rss":
            child.rss_limit = child.base_rss + job.memory_mb * MIB
        self.running[pid] = child
        self.selector.register(read_fd, selectors.EVENT_READ, child)
        # CLOCK_MONOTONIC is one clock for every process on the machine: the parent counts the run's wall
        # time from this instant, not from when its reader thread got round to the frame (under load, later
        # than the child's own timer started).
        self.send({"type": "started", "key": key, "pid": pid, "at": forked_at})

    def _free_slot(self) -> int:
        """The lowest worker slot no running child holds."""
        taken = {child.slot for child in self._busy()}
        return next(i for i in range(len(taken) + 1) if i not in taken)

    def _close_pipe(self, child: _Child) -> None:
        if not child.eof:
            child.eof = True
            self.selector.unregister(child.fd)
            os.close(child.fd)

    def _read_child(self, child: _Child) -> None:
        while not child.eof:
            try:
                chunk = os.read(child.fd, 1 << 20)
            except BlockingIOError:
                return
            if not chunk:
                self._close_pipe(child)
                self._report_early(child)
                return
            child.data += chunk
            if len(child.data) > self.max_payload and child.killed is None:
                child.killed = "oversize"
                os.kill(child.pid, signal.SIGKILL)
                self._close_pipe(child)

    def _report_early(self, child: _Child) -> None:
        """Relay a complete result as soon as the child closes its pipe, before it has finished exiting."""
        parsed = read_result(child.data) if child.killed is None else None
        if parsed is not None:
            child.reported = True
            # The freed slot's next job is forked before the result is relayed: once the parent has the
            # result it wakes and competes for the CPU, and the fork waited behind it (~4 ms a run, measured).
            self._dispatch(cached_only=True)
            self._result(child, parsed[0]["status"], parsed[0]["message"], parsed[1])

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in self.running.values():
            if child.killed is None and child.status is None and now >= child.deadline:
                child.killed = "timeout"
                os.kill(child.pid, signal.SIGKILL)
            elif child.killed is None and child.status is None and child.rss_limit:
                rss = resident_bytes(child.pid)
                if rss > child.rss_limit:
                    child.killed, child.peak_rss = "memory", rss
                    os.kill(child.pid, signal.SIGKILL)

    def _reap(self) -> None:
        for child in list(self.running.values()):
            if child.status is None:
                pid, status, rusage = os.wait4(child.pid, os.WNOHANG)
                if pid == 0:
                    continue
                child.status, child.rusage = status, rusage
            if not child.eof:
                os.set_blocking(child.fd, True)  # every writer is gone: this drains to EOF, never blocks
                self._read_child(child)
            del self.running[child.pid]
            try:
                self._finish(child)
            finally:
                if child.marker is not None:
                    child.marker.close()

    def _finish(self, child: _Child) -> None:
        job, status = child.job, child.status or 0
        if child.reported:
            return None
        if child.killed == "timeout":
            return self._result(
                child,
                "timeout",
                f"exceeded the wall-clock limit of {wall_limit_s(job):g} s (blocked or starved: "
                f"{_cpu_s(child):.1f} s of CPU time used of {child.cpu_limit:g} s)",
            )
        if child.killed == "memory":
            return self._result(
                child,
                "memory",
                f"resident memory {child.peak_rss // MIB} MiB exceeded the limit of {child.rss_limit // MIB} "
                f"MiB (memory_mb {job.memory_mb} + the zygote's {child.base_rss // MIB} MiB; RSS-enforced: "
                "a CUDA run has no address-space cap)",
            )
        if child.killed == "oversize":
            limit = self.max_payload // MIB
            return self._result(child, "failed", f"the run's result exceeded {limit} MiB")
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            cpu = _cpu_s(child)
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= child.cpu_limit - 0.5):
                return self._result(child, "timeout", f"exceeded the CPU-time limit of {child.cpu_limit:g} s")
            peak = child.rusage.ru_maxrss // 1024 if child.rusage else 0
            if sig == signal.SIGKILL:
                return self._sigkilled(child, peak)
            site = crash_site(child.data)
            label = protection_label(child.marker) if sig == signal.SIGSEGV else ""
            if label:
                return self._result(
                    child,
                    "failed",
                    f"{label} wrote into the model's parameters: outside the engine's own updates they are "
                    f"read-only memory (killed by SIGSEGV){site}; only the engine's optimiser step may "
                    "change them",
                )
            return self._result(
                child, "crashed", f"killed by {signal.Signals(sig).name} (peak RSS {peak} MiB){site}"
            )
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        parsed = read_result(child.data) if code == 0 else None
        if parsed is None:
            return self._result(child, "crashed", f"exited with code {code} without a result")
        header, payload = parsed
        self._result(child, header["status"], header["message"], payload)

    def _sigkilled(self, child: _Child, peak_mib: int) -> None:
        """A SIGKILL the zygote did not send (see :func:`classify_sigkill`)."""
        limit_mib = child.base_rss // MIB + child.job.memory_mb
        self._result(child, *classify_sigkill(peak_mib, limit_mib, child.oom_kills, oom_kills()))

    def _result(self, child: _Child | int, status: str, message: str, payload: bytes = b"") -> None:
        header = {"type": "result", "status": status, "message": message[:MAX_MESSAGE_CHARS]}
        if isinstance(child, _Child):
            header.update(key=child.key, pid=child.pid, child_s=time.monotonic() - child.started)
        else:
            header.update(key=child, pid=0, child_s=0.0)
        self.send(header, payload)

    def _kill_all(self) -> None:
        for child in self.running.values():
            if child.status is None:
                try:
                    os.kill(child.pid, signal.SIGKILL)
                    os.waitpid(child.pid, 0)
                except OSError:
                    pass
        self.running.clear()


# --- start-up ------------------------------------------------------------------------------------


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def _warm_up(libc: Any) -> None:
    """Run every code path a child needs once, so no child imports or lazily initialises anything."""
    import numpy as np
    from lifelines.utils import concordance_index

    from ..engine import run_federation
    from ..errors import TrainingFailure
    from ..recipe import RECIPES, FedAvg
    from ._guard import AuditPolicy, guarded_builtins

    concordance_index(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.3, 0.2]), np.array([1, 1, 0]))
    cfg = {"rounds": 1, "local_steps": 2, "batch_size": 4, "num_devices": 4, "num_clients": 2}
    profile = load_in_loader("synthetic", cfg, None, (), libc)

    class _Mlp(FedAvg):
        def model_variant(self) -> str:
            return "mlp"

    for cls in [*RECIPES.values(), _Mlp]:
        encode_result(run_federation(profile, profile.make_recipe(cls), 0, threads=1))
    guarded_builtins()
    with contextlib.suppress(PermissionError):
        AuditPolicy([sys.prefix])("open", ("/", "r", 0))
    compile("class _W: pass", CANDIDATE_FILE, "exec")
    try:
        raise TrainingFailure("warm-up")
    except TrainingFailure as exc:
        describe(exc, "")
    json.dumps({"status": "ok"})


def _fork_safety() -> dict[str, Any]:
    """What the children inherit that matters for GPUs and start-up cost: whether CUDA is initialised here
    (it must not be: a CUDA context does not survive ``fork``, and the children could not use the GPU) and
    whether lightning is loaded (the training path does not need it)."""
    import torch

    return {
        "cuda_initialized": bool(torch.cuda.is_initialized()),
        "lightning_loaded": any(name == "lightning" or name.startswith("lightning.") for name in sys.modules),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def _preload() -> None:
    import lifelines  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.metrics  # noqa: F401  (profiles import it lazily; children and loaders use it)
    import sklearn.model_selection  # noqa: F401
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    import afr.engine  # noqa: F401
    import afr.profiles
    import afr.recipe  # noqa: F401

    for name in afr.profiles.profile_names():  # every shipped profile, found from its YAML
        afr.profiles.profile_class(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m afr.sandbox._zygote")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--read-root", action="append", default=[])
    parser.add_argument("--max-payload-mb", type=int, default=256)
    parser.add_argument("--no-isolate", action="store_true")
    parser.add_argument("--device", action="append", default=[], help="CUDA_VISIBLE_DEVICES per worker slot")
    parser.add_argument("--niceness", type=int, default=0, help="added to each child's nice value")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    # Keep the protocol on private descriptors; stray prints from libraries go to stderr.
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us by closing stdin
    libc = load_libc()
    # Unprivileged: a user namespace first, while this process has one thread (torch starts more).
    userns = False if args.no_isolate else enter_user_namespace(libc)
    _preload()  # before isolating: matplotlib (via lifelines) writes its config under $HOME on import
    isolation: dict[str, Any] = {}
    if not args.no_isolate:
        isolation = {"user_namespace": userns, **isolate(libc)}
        seccomp = install_seccomp()
        isolation["seccomp"] = seccomp is True
        if seccomp is not True:
            isolation["seccomp_error"] = seccomp
    # glibc overwrites freed heap memory when MALLOC_PERTURB_ is set (the pool sets it; see _pool).
    isolation["malloc_perturb"] = bool(os.environ.get("MALLOC_PERTURB_"))
    _warm_up(libc)
    gc.collect()
    gc.freeze()  # children then do not dirty (copy) the pages of every long-lived object on collection
    zygote = Zygote(
        proto_in,
        proto_out,
        args.workers,
        base_read_roots(args.read_root),
        args.max_payload_mb * MIB,
        libc,
        args.device,
        args.niceness,
    )
    zygote.send(
        {
            "type": "ready",
            "pid": os.getpid(),
            "startup_s": time.perf_counter() - start,
            "threads": _thread_count(),
            "vsz_mb": vsz_bytes() // MIB,
            "isolation": isolation,
            "read_roots": zygote.roots,
            **_fork_safety(),
            "devices": zygote.devices,
        }
    )
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
