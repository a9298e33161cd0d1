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

The zygote itself never runs candidate code: it loads profiles (training parts only, test dropped),
forks, enforces the wall-clock timeout, reaps and relays.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import io
import json
import linecache
import math
import os
import pickle
import resource
import selectors
import signal
import site
import struct
import sys
import sysconfig
import time
import traceback
import types
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._guard import denied_module_names
from ._jobs import REQUEST, RunJob, encode_frame

__all__ = ["load_training_profile", "Zygote", "main"]

CHILD_HEADER = struct.Struct(">I")
MAX_HEADER_BYTES = 1 << 20
MAX_MESSAGE_CHARS = 2000
CANDIDATE_FILE = "<candidate>"
CANDIDATE_MODULE = "candidate"
PROFILE_CACHE_SIZE = 8
_MIB = 1 << 20

# Linux constants (prctl, unshare, mount, mount_setattr).
_PR_SET_PDEATHSIG = 1
_CLONE_NEWNS, _CLONE_NEWNET = 0x00020000, 0x40000000
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
_MOUNT_ATTR_RDONLY, _AT_RECURSIVE, _AT_FDCWD = 0x1, 0x8000, -100
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (unified syscall table)


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


# --- helpers shared by zygote and child ------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    line = " ".join(text.strip().split("\n")[0].split()) if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:  # a candidate's exception may have a hostile __str__
        return "<unprintable>"


def _vsz_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


class _MountAttr(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")]


def _isolate(libc: ctypes.CDLL | None) -> dict[str, bool]:
    """Best effort, needs CAP_SYS_ADMIN: an empty network namespace and a read-only view of all mounts.

    Applies to the zygote and so to every child; the parent is unaffected. Failure leaves the
    audit hook and the resource limits as the only guards.
    """
    done = {"no_network": False, "readonly_fs": False}
    if libc is None or not sys.platform.startswith("linux"):
        return done
    done["no_network"] = libc.unshare(_CLONE_NEWNET) == 0
    if libc.unshare(_CLONE_NEWNS) == 0 and libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) == 0:
        attr = _MountAttr(_MOUNT_ATTR_RDONLY, 0, 0, 0)
        done["readonly_fs"] = (
            libc.syscall(
                _SYS_MOUNT_SETATTR, _AT_FDCWD, b"/", _AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)
            )
            == 0
        )
    return done


def _base_read_roots(extra: list[str]) -> list[str]:
    import afr

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *extra}
    roots.update(site.getsitepackages())
    roots.update(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib"))
    roots.add(str(Path(afr.__file__).resolve().parent))
    return sorted(r for r in roots if r)


# --- the child -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Curve entries as types ``torch.load(weights_only=True)`` accepts."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    item = getattr(value, "item", None)  # numpy and 0-d torch scalars
    if callable(item):
        try:
            return _plain(item())
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(value)


def _encode_result(result: Any) -> bytes:
    import torch

    payload = {
        "model_variant": str(result.model_variant),
        "state_dict": {str(k): v.detach().clone().contiguous() for k, v in result.state_dict.items()},
        "curve": _plain(list(result.curve)),
        "steps_per_client": [int(s) for s in result.steps_per_client],
        "bytes_up": int(result.bytes_up),
        "bytes_down": int(result.bytes_down),
        "seconds": float(result.seconds),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _is_memory_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = _safe_str(exc) if isinstance(exc, RuntimeError) else ""
    return "can't allocate memory" in text or type(exc).__name__ == "OutOfMemoryError"


def _describe(exc: BaseException, source: str | None) -> str:
    """``Type: first line of the message`` plus the last frame in the candidate file, if any."""
    text = _one_line(_safe_str(exc), 600)
    message = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    where = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == CANDIDATE_FILE:
            where = (lineno, frame.f_code.co_name)
    if where is not None:
        lineno, func = where
        lines = (source or "").splitlines()
        code = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
        message += f" [{CANDIDATE_FILE} line {lineno}, in {func}: {_one_line(code, 200)}]"
    return _one_line(message)


def _recipe_class(job: RunJob) -> type:
    from ..errors import ConfigError
    from ..recipe import RECIPES, Recipe
    from ._guard import guarded_builtins

    if job.recipe_name is not None:
        if job.recipe_name not in RECIPES:
            raise ConfigError(
                f"unknown built-in recipe {job.recipe_name!r}", fix=f"use one of {', '.join(sorted(RECIPES))}"
            )
        return RECIPES[job.recipe_name]
    source = job.recipe_source or ""
    module = types.ModuleType(CANDIDATE_MODULE)
    module.__dict__["__builtins__"] = guarded_builtins()
    sys.modules[CANDIDATE_MODULE] = module  # dataclasses and typing look classes' modules up here
    linecache.cache[CANDIDATE_FILE] = (len(source), None, source.splitlines(True), CANDIDATE_FILE)
    exec(compile(source, CANDIDATE_FILE, "exec"), module.__dict__)
    namespace = module.__dict__
    if job.class_name is not None:
        chosen = namespace.get(job.class_name)
        if not (isinstance(chosen, type) and issubclass(chosen, Recipe)):
            raise ConfigError(f"the recipe source defines no Recipe subclass named {job.class_name!r}")
        return chosen
    defined = [
        v
        for v in namespace.values()
        if isinstance(v, type) and issubclass(v, Recipe) and v.__module__ == CANDIDATE_MODULE
    ]
    if not defined:
        raise ConfigError("the recipe source defines no Recipe subclass", fix="derive a class from FedAvg")
    return defined[-1]


def _run_job(job: RunJob, profile: Any) -> tuple[dict[str, Any], bytes]:
    from ..engine import run_federation
    from ..errors import TrainingFailure

    try:
        recipe = profile.make_recipe(_recipe_class(job), dict(job.scalars))
        result = run_federation(profile, recipe, job.seed, stage=job.stage, validate_every=1, threads=1)
        return {"status": "ok", "message": ""}, _encode_result(result)
    except TrainingFailure as exc:
        return {"status": "failed", "message": _safe_str(exc)[:MAX_MESSAGE_CHARS]}, b""
    except BaseException as exc:
        memory = _is_memory_error(exc)
        try:
            text = _describe(exc, job.recipe_source)
        except MemoryError:
            text = type(exc).__name__
        if memory:
            # What filled the memory may live on in the failed frames' locals: free it before writing.
            traceback.clear_frames(exc.__traceback__)
            return {"status": "memory", "message": f"{text} (limit: {job.memory_mb} MiB)"}, b""
        return {"status": "failed", "message": text}, b""


def _set_limits(job: RunJob, base_vsz: int) -> None:
    address_space = base_vsz + job.memory_mb * _MIB
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    cpu = math.ceil(job.timeout_s) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def _child_main(
    job: RunJob,
    profile: Any,
    result_fd: int,
    roots: list[str],
    base_vsz: int,
    zygote_pid: int,
    libc: Any,
    doomed_modules: list[str],
) -> None:
    """Runs in the forked child; never returns into the zygote's loop (the caller ``os._exit``s)."""
    from ._guard import install_audit_hook, purge_denied_modules

    os.setsid()
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    # Only stdio (stdin /dev/null, stdout+stderr -> the zygote's stderr) and the result pipe stay open.
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, max(os.sysconf("SC_OPEN_MAX"), result_fd + 2))
    # Before the audit hook (which refuses ctypes): die with the zygote, and catch the race where it
    # died before prctl took effect.
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != zygote_pid:
        os._exit(1)
    _set_limits(job, base_vsz)
    purge_denied_modules(doomed_modules)
    install_audit_hook(roots)
    header, payload = _run_job(job, profile)
    head = json.dumps(header).encode()
    _write_all(result_fd, CHILD_HEADER.pack(len(head)) + head + payload)
    # EOF now rather than at exit: tearing down a zygote-sized address space takes ~10-20 ms.
    os.close(result_fd)


# --- the zygote ----------------------------------------------------------------------------------


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


class Zygote:
    """The fork server's state: the job queue, running children and the profile cache."""

    def __init__(
        self, proto_in: int, proto_out: int, workers: int, roots: list[str], max_payload: int, libc: Any
    ) -> None:
        self.proto_in, self.proto_out = proto_in, proto_out
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
        _write_all(self.proto_out, encode_frame(header, payload))

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

    def _profile(self, job: RunJob) -> Any:
        cache_key = (job.profile, json.dumps(job.profile_cfg, sort_keys=True, default=repr), job.data_dir)
        if cache_key in self.profiles:
            self.profiles.move_to_end(cache_key)
        else:
            self.profiles[cache_key] = load_training_profile(
                job.profile, job.profile_cfg, job.data_dir, job.import_roots
            )
            while len(self.profiles) > PROFILE_CACHE_SIZE:
                self.profiles.popitem(last=False)
        return self.profiles[cache_key]

    def _dispatch(self) -> None:
        while self.queue and len(self.running) < self.workers:
            key, job = self.queue.popleft()
            try:
                profile = self._profile(job)
            except Exception as exc:
                self._result(key, "failed", f"could not load profile {job.profile!r}: {_describe(exc, None)}")
                continue
            self._fork(key, job, profile)

    def _fork(self, key: int, job: RunJob, profile: Any) -> None:
        roots = [*self.roots, *job.import_roots, *(str(d) for d in (job.data_dir, profile.data_dir) if d)]
        base_vsz = _vsz_bytes()
        doomed = denied_module_names()
        read_fd, write_fd = os.pipe()
        zygote_pid = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                _child_main(job, profile, write_fd, roots, base_vsz, zygote_pid, self.libc, doomed)
                code = 0
            finally:
                os._exit(code)  # never unwind into the zygote's loop
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        now = time.monotonic()
        child = _Child(key, job, pid, read_fd, now, now + job.timeout_s, math.ceil(job.timeout_s) + 5)
        self.running[pid] = child
        self.selector.register(read_fd, selectors.EVENT_READ, child)
        self.send({"type": "started", "key": key, "pid": pid})

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
        parsed = self._parse(child.data) if child.killed is None else None
        if parsed is not None:
            child.reported = True
            self._result(child, parsed[0]["status"], parsed[0]["message"], parsed[1])

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in self.running.values():
            if child.killed is None and child.status is None and now >= child.deadline:
                child.killed = "timeout"
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
            self._finish(child)

    def _finish(self, child: _Child) -> None:
        job, status = child.job, child.status or 0
        if child.reported:
            return None
        if child.killed == "timeout":
            return self._result(child, "timeout", f"exceeded the wall-clock limit of {job.timeout_s:g} s")
        if child.killed == "oversize":
            limit = self.max_payload // _MIB
            return self._result(child, "failed", f"the run's result exceeded {limit} MiB")
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            cpu = child.rusage.ru_utime + child.rusage.ru_stime if child.rusage else 0.0
            if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= child.cpu_limit - 0.5):
                return self._result(child, "timeout", f"exceeded the CPU-time limit of {child.cpu_limit:g} s")
            peak = child.rusage.ru_maxrss // 1024 if child.rusage else 0
            if sig == signal.SIGKILL:
                return self._result(
                    child,
                    "memory",
                    f"killed by SIGKILL from outside the sandbox (most likely the kernel's OOM killer; "
                    f"peak RSS {peak} MiB)",
                )
            return self._result(
                child, "crashed", f"killed by {signal.Signals(sig).name} (peak RSS {peak} MiB)"
            )
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        parsed = self._parse(child.data) if code == 0 else None
        if parsed is None:
            return self._result(child, "crashed", f"exited with code {code} without a result")
        header, payload = parsed
        self._result(child, header["status"], header["message"], payload)

    @staticmethod
    def _parse(data: bytearray) -> tuple[dict[str, Any], bytes] | None:
        if len(data) < CHILD_HEADER.size:
            return None
        (size,) = CHILD_HEADER.unpack_from(data)
        if size > MAX_HEADER_BYTES or len(data) < CHILD_HEADER.size + size:
            return None
        try:
            header = json.loads(bytes(data[CHILD_HEADER.size : CHILD_HEADER.size + size]))
        except ValueError:
            return None
        if not isinstance(header, dict) or header.get("status") not in ("ok", "failed", "memory"):
            return None
        payload = bytes(data[CHILD_HEADER.size + size :])
        if (header["status"] == "ok") != bool(payload):
            return None
        return {"status": header["status"], "message": str(header.get("message", ""))}, payload

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


def _warm_up() -> None:
    """Run every code path a child needs once, so no child imports or lazily initialises anything."""
    import numpy as np
    from lifelines.utils import concordance_index

    from ..engine import run_federation
    from ..errors import TrainingFailure
    from ..recipe import RECIPES, FedAvg
    from ._guard import AuditPolicy, guarded_builtins

    concordance_index(np.array([1.0, 2.0, 3.0]), np.array([0.1, 0.3, 0.2]), np.array([1, 1, 0]))
    cfg = {"rounds": 1, "local_steps": 2, "batch_size": 4, "num_devices": 4, "num_clients": 2}
    profile = load_training_profile("synthetic", cfg, None)

    class _Mlp(FedAvg):
        def model_variant(self) -> str:
            return "mlp"

    for cls in [*RECIPES.values(), _Mlp]:
        _encode_result(run_federation(profile, profile.make_recipe(cls), 0, threads=1))
    guarded_builtins()
    with contextlib.suppress(PermissionError):
        AuditPolicy([sys.prefix])("open", ("/", "r", 0))
    compile("class _W: pass", CANDIDATE_FILE, "exec")
    try:
        raise TrainingFailure("warm-up")
    except TrainingFailure as exc:
        _describe(exc, "")
    json.dumps({"status": "ok"})


def _preload() -> None:
    import lifelines  # noqa: F401
    import lightning  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
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
    args = parser.parse_args(argv)
    start = time.perf_counter()
    # Keep the protocol on private descriptors; stray prints from libraries go to stderr.
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    os.close(devnull)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us by closing stdin
    libc = _libc()
    _preload()  # before isolating: matplotlib (via lifelines) writes its config under $HOME on import
    isolation = {} if args.no_isolate else _isolate(libc)
    _warm_up()
    gc.collect()
    gc.freeze()  # children then do not dirty (copy) the pages of every long-lived object on collection
    zygote = Zygote(
        proto_in, proto_out, args.workers, _base_read_roots(args.read_root), args.max_payload_mb * _MIB, libc
    )
    zygote.send(
        {
            "type": "ready",
            "pid": os.getpid(),
            "startup_s": time.perf_counter() - start,
            "threads": _thread_count(),
            "vsz_mb": _vsz_bytes() // _MIB,
            "isolation": isolation,
            "read_roots": zygote.roots,
        }
    )
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
