"""What seals the zygote and its children: namespaces and mounts, seccomp, resource limits, readable roots.

As root the zygote unshares a network and a mount namespace itself; unprivileged, it first enters a user
namespace (``unshare -Ur``: root inside, the caller's uid outside), which grants it the capabilities to do
the same. Then a seccomp filter refuses the syscalls a training run never needs. All of it is best effort
where the kernel or the machine refuses (no user namespaces, no libseccomp): the audit hook of ``_guard``
and the resource limits remain, and the zygote's ``ready`` report says what was applied.
"""

from __future__ import annotations

import ctypes
import errno
import math
import mmap
import os
import resource
import signal
import site
import sys
import sysconfig
from pathlib import Path
from typing import Literal

from ._jobs import RunJob

__all__ = [
    "MIB",
    "SECCOMP_DENIED",
    "load_libc",
    "enter_user_namespace",
    "isolate",
    "install_seccomp",
    "base_read_roots",
    "vsz_bytes",
    "memory_cap_mode",
    "MemoryCap",
    "cpu_limit_s",
    "wall_limit_s",
    "set_limits",
    "die_with_parent",
    "PageProtection",
    "MARKER_BYTES",
    "protection_label",
]

MIB = 1 << 20

# Linux constants (prctl, unshare, mount, mount_setattr).
_PR_SET_PDEATHSIG = 1
_CLONE_NEWNS, _CLONE_NEWNET, _CLONE_NEWUSER = 0x00020000, 0x40000000, 0x10000000
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


def enter_user_namespace(libc: ctypes.CDLL | None) -> bool:
    """Unprivileged only: enter a new user namespace mapping this uid/gid to root inside it (``unshare -Ur``).

    Inside it the zygote holds the capabilities :func:`isolate` needs, over namespaces it owns only;
    outside, it and its children stay the unprivileged caller. The kernel allows this only while the
    process has a single thread: call it before importing torch. False (nothing changed) where refused
    (``kernel.unprivileged_userns_clone=0``, a seccomp'd container, no libc) or when already root.
    """
    if libc is None or not sys.platform.startswith("linux") or os.geteuid() == 0:
        return False
    uid, gid = os.geteuid(), os.getegid()
    if libc.unshare(_CLONE_NEWUSER) != 0:
        return False
    try:
        # setgroups must be denied before an unprivileged process may write its gid_map.
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    except OSError:
        return True  # in the namespace, unmapped (uid nobody inside): still no capability outside it
    return True


def isolate(libc: ctypes.CDLL | None) -> dict[str, bool]:
    """Best effort, needs CAP_SYS_ADMIN (as root, or inside the zygote's own user namespace): an empty
    network namespace and a read-only view of all mounts.

    Applies to the zygote and so to every child; the parent is unaffected. Failure leaves the
    seccomp filter, the audit hook and the resource limits as the guards.
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


SECCOMP_DENIED: tuple[str, ...] = (
    # network and local sockets (a Unix socket on a read-only mount still connects, e.g. to a daemon)
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # other programs: none is started after the zygote's start-up; io_uring would bypass this filter
    "execve", "execveat", "io_uring_setup", "io_uring_enter", "io_uring_register",
    # reading or steering other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "perf_event_open", "bpf",
    # the namespace and mount view the zygote set up stays as it is
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "move_mount",
    "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr", "name_to_handle_at", "open_by_handle_at",
    # kernel state no run touches
    "keyctl", "add_key", "request_key", "userfaultfd", "init_module", "finit_module", "delete_module",
    "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "syslog", "quotactl",
    "mknod", "mknodat", "fanotify_init", "settimeofday", "clock_settime", "adjtimex", "clock_adjtime",
)  # fmt: skip
"""Syscalls the seccomp filter answers with EPERM in the zygote and every process forked from it."""

# clone() with any of these flags would make new namespaces (unshare by another name); clone3() passes its
# flags in memory a filter cannot read, so it answers ENOSYS and glibc falls back to clone().
_CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)


def install_seccomp() -> bool | str:
    """Refuse :data:`SECCOMP_DENIED` (EPERM) in this process and all it forks from now on; irreversible.

    Uses libseccomp through ``pyseccomp`` (sets no_new_privs, so it also works unprivileged). Returns
    True, or a one-line reason why no filter could be loaded. Call after the last ``exec``/``mount``
    the zygote needs and before the audit hook (``pyseccomp`` uses ctypes).
    """
    if not sys.platform.startswith("linux"):
        return "not Linux"
    try:
        import pyseccomp
    except (ImportError, OSError) as exc:  # OSError: libseccomp.so itself is missing
        return f"pyseccomp/libseccomp unavailable: {type(exc).__name__}: {exc}"
    try:
        rules = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
        for name in SECCOMP_DENIED:
            try:
                rules.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
            except (OSError, ValueError, RuntimeError):
                continue  # a syscall this kernel/arch has no number for
        for flag in _CLONE_NAMESPACE_FLAGS:
            rules.add_rule(
                pyseccomp.ERRNO(errno.EPERM), "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag)
            )
        rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
        rules.load()
    except Exception as exc:  # noqa: BLE001 - any failure of the binding leaves the other guards
        return f"seccomp filter not loaded: {type(exc).__name__}: {exc}"
    return True


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
    """A child's CPU-time limit (RLIMIT_CPU): ``timeout_s``, whole seconds.

    CPU time, not the wall clock, is what ends a run that computes too long: it does not depend on how
    loaded the machine is, so a run ends the same way (``timeout``, or ``memory`` first for a run that
    fills its address space) on every machine.
    """
    return math.ceil(job.timeout_s)


WALL_FACTOR, WALL_MARGIN_S = 3.0, 30.0


def wall_limit_s(job: RunJob) -> float:
    """The wall-clock backstop: a child that sleeps or blocks burns no CPU time; the zygote kills it here."""
    return job.timeout_s * WALL_FACTOR + WALL_MARGIN_S


MemoryCap = Literal["address_space", "rss"]


def memory_cap_mode(device_type: str) -> MemoryCap:
    """How a child's ``memory_mb`` is enforced, by the device its profile trains on.

    ``address_space`` (CPU): RLIMIT_AS, set by the child itself -- exact, and the allocation that would
    exceed it fails with a MemoryError the run reports as ``memory``. ``rss`` (CUDA): no RLIMIT_AS, because
    the CUDA driver reserves tens of GiB of virtual address space at start-up (unified addressing), which
    any useful cap would refuse; instead the zygote polls the child's resident set (``/proc/<pid>/statm``)
    and kills it past the same budget (the zygote's pages at the fork + ``memory_mb``), reported as
    ``memory``. Device memory is the GPU's own business (torch raises OutOfMemoryError: ``memory`` too).
    """
    return "rss" if device_type == "cuda" else "address_space"


def set_limits(job: RunJob, base_vsz: int, memory_cap: MemoryCap = "address_space") -> None:
    """A child's resource limits: address space (see :func:`memory_cap_mode`), CPU time, no file writes,
    no core dumps, few files."""
    if memory_cap == "address_space":
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


def resident_bytes(pid: int | str = "self") -> int:
    """A process's resident set size (a child forked now starts with these pages mapped); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


_OOM_COUNTERS = (
    ("/proc/vmstat", "oom_kill"),  # the kernel's, machine-wide (Linux >= 4.13)
    ("/sys/fs/cgroup/memory.events", "oom_kill"),  # cgroup v2: this container's
    ("/sys/fs/cgroup/memory/memory.oom_control", "oom_kill"),  # cgroup v1
)


def oom_kills() -> int | None:
    """The OOM killer's kill counters that can be read here, summed (None if none can): evidence that a
    SIGKILL came from it when the sum rose while a child ran (every counter only grows)."""
    total, found = 0, False
    for path, key in _OOM_COUNTERS:
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == key:
                        total, found = total + int(value), True
                        break
        except (OSError, ValueError):
            continue
    return total if found else None


MARKER_BYTES = 512
"""A shared page per child: what ran when its write-protected parameters were written (the engine's label)."""
_PROT_READ, _PROT_WRITE = 0x1, 0x2


class PageProtection:
    """The engine's ``PageGuard`` in a forked child: ``mprotect`` through libc, and a label in ``marker``, an
    anonymous page shared with the zygote, which reads it if the child dies of SIGSEGV.

    Made before the audit hook (which refuses resolving native symbols, ``ctypes.dlsym``); a resolved
    function pointer is then only called. mprotect is not on the seccomp deny list.
    """

    def __init__(self, libc: ctypes.CDLL, marker: mmap.mmap) -> None:
        mprotect = libc.mprotect
        mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        mprotect.restype = ctypes.c_int
        self._mprotect = mprotect
        self._marker = marker

    def _set(self, regions: list[tuple[int, int]], prot: int) -> None:
        for address, length in regions:
            if self._mprotect(address, length, prot) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"mprotect of the model's parameters failed: {os.strerror(code)}")

    def protect(self, regions: list[tuple[int, int]]) -> None:
        self._set(regions, _PROT_READ)

    def unprotect(self, regions: list[tuple[int, int]]) -> None:
        self._set(regions, _PROT_READ | _PROT_WRITE)

    def label(self, text: str) -> None:
        data = text.encode("utf-8", "replace")[: MARKER_BYTES - 1] + b"\0"
        self._marker[: len(data)] = data


def protection_label(marker: mmap.mmap | None) -> str:
    """The zygote's side: what the child's engine last said ran under write protection ("" if nothing)."""
    if marker is None or marker.closed:
        return ""
    return bytes(marker[:MARKER_BYTES]).split(b"\0", 1)[0].decode("utf-8", "replace")
