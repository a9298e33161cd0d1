"""What runs in a forked child: seal it, run the job, encode the result or describe the error.

The child writes one frame to its result pipe: ``CHILD_HEADER`` length + a JSON header (status,
message), then the bytes of ``torch.save(payload)``. :func:`read_result` is the zygote's side of that
frame; it never unpickles the payload.
"""

from __future__ import annotations

import faulthandler
import io
import json
import linecache
import os
import re
import signal
import struct
import sys
import traceback
import types
from typing import Any

from ._isolation import MemoryCap, PageProtection, die_with_parent, set_limits
from ._jobs import RunJob

__all__ = [
    "CANDIDATE_FILE",
    "MAX_MESSAGE_CHARS",
    "child_main",
    "crash_site",
    "describe",
    "encode_result",
    "read_result",
    "write_all",
]

CHILD_HEADER = struct.Struct(">I")
MAX_HEADER_BYTES = 1 << 20
MAX_MESSAGE_CHARS = 2000
CANDIDATE_FILE = "<candidate>"
CANDIDATE_MODULE = "candidate"


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd`` (a pipe may take less than all at once)."""
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


def encode_result(result: Any) -> bytes:
    """A run's result as ``torch.save`` bytes of plain types and tensors (read with ``weights_only``)."""
    import torch

    payload = {
        "model_variant": str(result.model_variant),
        "state_dict": {str(k): v.detach().clone().contiguous() for k, v in result.state_dict.items()},
        "curve": _plain(list(result.curve)),
        "steps_per_client": [int(s) for s in result.steps_per_client],
        "bytes_up": int(result.bytes_up),
        "bytes_down": int(result.bytes_down),
        "seconds": float(result.seconds),
        "engine_path": str(result.engine_path),
        "engine_note": str(result.engine_note),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def _is_memory_error(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = _safe_str(exc) if isinstance(exc, RuntimeError) else ""
    return "can't allocate memory" in text or type(exc).__name__ == "OutOfMemoryError"


def describe(exc: BaseException, source: str | None) -> str:
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
    from ..recipe import RECIPES, Recipe, find_recipe_class
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
    found = find_recipe_class(namespace, CANDIDATE_MODULE)
    if found is None:
        raise ConfigError("the recipe source defines no Recipe subclass", fix="derive a class from FedAvg")
    return found


def _run_job(job: RunJob, profile: Any, pages: Any = None) -> tuple[dict[str, Any], bytes]:
    from ..engine import run_federation
    from ..errors import TrainingFailure

    try:
        recipe = profile.make_recipe(_recipe_class(job), dict(job.scalars))
        result = run_federation(
            profile, recipe, job.seed, stage=job.stage, validate_every=1, threads=1, pages=pages
        )
        return {"status": "ok", "message": ""}, encode_result(result)
    except TrainingFailure as exc:
        return {"status": "failed", "message": _safe_str(exc)[:MAX_MESSAGE_CHARS]}, b""
    except BaseException as exc:
        memory = _is_memory_error(exc)
        try:
            text = describe(exc, job.recipe_source)
        except MemoryError:
            text = type(exc).__name__
        if memory:
            # What filled the memory may live on in the failed frames' locals: free it before writing.
            traceback.clear_frames(exc.__traceback__)
            return {"status": "memory", "message": f"{text} (limit: {job.memory_mb} MiB)"}, b""
        return {"status": "failed", "message": text}, b""


def child_main(
    job: RunJob,
    profile: Any,
    result_fd: int,
    roots: list[str],
    base_vsz: int,
    zygote_pid: int,
    libc: Any,
    doomed_modules: list[str],
    visible_devices: str | None = None,
    memory_cap: MemoryCap = "address_space",
    niceness: int = 0,
    marker: Any = None,
) -> None:
    """Runs in the forked child; never returns into the zygote's loop (the caller ``os._exit``s).

    ``marker``: a page shared with the zygote; with it (and libc) the engine write-protects large models'
    parameters (``PageProtection``) and labels what runs there, for the zygote's message on a SIGSEGV.

    ``visible_devices``: this worker's ``CUDA_VISIBLE_DEVICES`` (the zygote never initialised CUDA, so the
    driver reads it when this child first touches CUDA); None keeps the zygote's environment as it is.
    """
    from ._guard import install_audit_hook, purge_denied_modules

    if visible_devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible_devices
    os.setsid()
    if niceness > 0:
        os.nice(niceness)  # below the campaign process, which hands out the next jobs (see SandboxPool)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    # Only stdio (stdin /dev/null, stdout+stderr -> the zygote's stderr) and the result pipe stay open.
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, max(os.sysconf("SC_OPEN_MAX"), result_fd + 2))
    # Before the audit hook (which refuses ctypes): die with the zygote, and catch the race where it
    # died before prctl took effect.
    die_with_parent(libc)
    if os.getppid() != zygote_pid:
        os._exit(1)
    set_limits(job, base_vsz, memory_cap)
    # Resolves mprotect now: the audit hook refuses resolving native symbols (calling one raises no event).
    pages = PageProtection(libc, marker) if libc is not None and marker is not None else None
    # A fatal signal (a write into write-protected parameters, a crash in native code) writes the Python
    # stack into the result pipe: the zygote quotes the candidate's line from it (crash_site). Before the
    # purge, which drops the module (denied to candidates; the handler, installed in C, stays).
    faulthandler.enable(file=result_fd, all_threads=False)
    purge_denied_modules(doomed_modules)
    install_audit_hook(roots)
    header, payload = _run_job(job, profile, pages)
    head = json.dumps(header).encode()
    faulthandler.disable()  # the fd closes below: a late fault must not write into whatever reuses it
    write_all(result_fd, CHILD_HEADER.pack(len(head)) + head + payload)
    # EOF now rather than at exit: tearing down a zygote-sized address space takes ~10-20 ms.
    os.close(result_fd)


_FAULT_FRAME = re.compile(rb'File "' + re.escape(CANDIDATE_FILE.encode()) + rb'", line (\d+) in (\w+)')


def crash_site(data: bytes | bytearray) -> str:
    """The candidate's innermost frame in what faulthandler wrote when a fatal signal killed the child
    (``[<candidate> line 9, in local_objective]``); "" if its code was not on the stack."""
    if data[:1] != b"F":  # "Fatal Python error: ..."; a result frame starts with its length
        return ""
    found = _FAULT_FRAME.search(bytes(data[:65536]))
    return f" [{CANDIDATE_FILE} line {int(found[1])}, in {found[2].decode()}]" if found else ""


def read_result(data: bytearray) -> tuple[dict[str, Any], bytes] | None:
    """A child's frame as (header, payload bytes); None if it is incomplete or malformed."""
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
