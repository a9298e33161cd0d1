"""What seals the zygote and its children: namespaces and mounts, resource limits, readable roots, libc.

All of it is best effort where the kernel refuses (no CAP_SYS_ADMIN, no libc): the audit hook of
``_guard`` and the resource limits remain.
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
import site
import sys
import sysconfig
from pathlib import Path

from ._jobs import RunJob

__all__ = [
    "MIB",
    "load_libc",
    "isolate",
    "base_read_roots",
    "vsz_bytes",
    "cpu_limit_s",
    "set_limits",
    "die_with_parent",
]

MIB = 1 << 20

# Linux constants (prctl, unshare, mount, mount_setattr).
_PR_SET_PDEATHSIG = 1
_CLONE_NEWNS, _CLONE_NEWNET = 0x00020000, 0x40000000
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18
_MOUNT_ATTR_RDONLY, _AT_RECURSIVE, _AT_FDCWD = 0x1, 0x8000, -100
_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (unified syscall table)


def load_libc() -> ctypes.CDLL | None:
    """The C library, for the calls Python has no wrapper for (None where it cannot be loaded)."""
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


class _MountAttr(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")]


def isolate(libc: ctypes.CDLL | None) -> dict[str, bool]:
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


def base_read_roots(extra: list[str]) -> list[str]:
    """Directories every child may read: the Python installation, afr itself and ``extra``."""
    import afr

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, *extra}
    roots.update(site.getsitepackages())
    roots.update(sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib"))
    roots.add(str(Path(afr.__file__).resolve().parent))
    return sorted(r for r in roots if r)


def vsz_bytes() -> int:
    """This process's virtual memory size (a child's address-space limit is set on top of it)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def cpu_limit_s(job: RunJob) -> int:
    """A child's CPU-time limit: the wall-clock limit plus a margin (the wall clock normally ends it)."""
    return math.ceil(job.timeout_s) + 5


def set_limits(job: RunJob, base_vsz: int) -> None:
    """A child's resource limits: address space, CPU time, no file writes, no core dumps, few files."""
    address_space = base_vsz + job.memory_mb * MIB
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    cpu = cpu_limit_s(job)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def die_with_parent(libc: ctypes.CDLL | None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (needs libc: before the audit hook)."""
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
