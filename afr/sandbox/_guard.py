"""The audit hook installed in every sandboxed child just before candidate code runs.

An audit hook (PEP 578) sees the events CPython raises for sensitive operations and can refuse
them by raising. This one raises ``PermissionError("sandbox refused <event>: ...")``. It is
*defence in depth* behind the static validator: it cannot see what native code does (``torch``
C++ file readers/writers, raw syscalls), there is no event for assigning attributes on modules
or classes (``torch.add = f``, ``afr.engine._loop.x = y``, ``Tensor.foo = g`` raise nothing in
Python 3.11), and once installed a hook cannot be removed -- which is the point, since the child
exits after its one run.

==================================================  =========================================================
Refused                                             Why
==================================================  =========================================================
``open`` for writing: a w/a/x/+ mode, or O_WRONLY,  a run writes no files (RLIMIT_FSIZE=0 and, where
O_RDWR, O_CREAT, O_TRUNC, O_APPEND flags;           possible, a read-only mount view stop native writes too)
anywhere, raw fds too
``open``, ``os.listdir``, ``os.scandir``,           only Python's install (prefixes, stdlib, site-packages),
``glob.glob`` outside the allowed read roots        the afr package and the data dir are readable: no /etc,
                                                    /proc/self, $HOME
``os.remove rename mkdir rmdir chmod chown chflags  no filesystem mutation
symlink link truncate utime setxattr
removexattr``, ``shutil.*``, ``tempfile.*``
``socket.*`` (__new__, connect, bind, getaddrinfo,  no network (the zygote also sits in an empty network
...), ``urllib.*``, ``http.*``, ``ftplib.*``,       namespace where it may create one)
``smtplib.*``, ...
``subprocess.Popen``, ``os.system``, ``os.exec``,   no new programs or processes
``os.spawn``, ``os.posix_spawn``, ``os.fork``,
``os.forkpty``, ``pty.spawn``
``os.kill``, ``os.killpg``,                         no signalling the zygote, the parent or siblings
``signal.pthread_kill``
``os.putenv``, ``os.unsetenv``                      the (already clean) environment stays fixed
``ctypes.*`` (dlopen, dlsym, addressof,             native calls and raw memory access would bypass every
call_function, cdata, ...), ``mmap.__new__``,       other rule
``fcntl.*``
``resource.setrlimit``, ``resource.prlimit``        the memory, CPU and file limits stay as set
``sys.settrace``, ``sys.setprofile``,               tracing could observe or rewrite the engine as it runs
``sys._current_frames``
``gc.get_objects``, ``gc.get_referrers``,           reaching the engine's objects through the collector
``gc.get_referents``
``sys.addaudithook``, ``setopencodehook``           no second hook that could shadow this one (CPython then
                                                    silently skips adding it)
``pickle.find_class``                               unpickling arbitrary callables
``builtins.input``                                  stdin is /dev/null
``import`` of :data:`DENIED_IMPORTS` (ctypes,       OS-level power. The event fires only for modules not yet
socket, subprocess, multiprocessing, pty, signal,   loaded, so the child also drops them from sys.modules and
mmap, resource, ...)                                the candidate's builtins get an ``__import__`` that
                                                    refuses them by name
``object.__setattr__``, ``object.__delattr__`` on   no swapping ``__class__``/``__bases__`` of engine objects
an object or class of the ``afr`` package           (the only setattr events Python 3.11 raises)
==================================================  =========================================================

Allowed on purpose: ``sys._getframe`` and frame attribute access (torch and logging use them
on every step), ``compile``/``exec``/``code.__new__`` (dataclasses and torch generate code),
``import`` of anything else from the allowed roots, threads (the zygote kills the whole child).
The price of allowing frames: ``sys._getframe(1).f_locals`` reaches the engine's locals from a
hook, so the static validator must refuse frame introspection (``sys``, ``inspect``, ``f_back``...).
"""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "install_audit_hook",
    "AuditPolicy",
    "DENIED_IMPORTS",
    "guarded_builtins",
    "purge_denied_modules",
    "denied_module_names",
]

DENIED_IMPORTS: frozenset[str] = frozenset(
    {
        "ctypes", "_ctypes", "socket", "_socket", "ssl", "_ssl", "subprocess", "_posixsubprocess",
        "multiprocessing", "_multiprocessing", "pty", "tty", "termios", "fcntl", "mmap", "resource",
        "signal", "_signal", "sqlite3", "_sqlite3", "urllib", "http", "ftplib", "smtplib", "poplib",
        "imaplib", "nntplib", "telnetlib", "webbrowser", "xmlrpc", "socketserver", "asyncio",
        "_asyncio", "_posixshmem", "_xxsubinterpreters", "faulthandler", "pyseccomp",
    }
)  # fmt: skip
"""Top-level modules a candidate may not import (by statement, importlib, or a fresh import)."""

_DENIED_EVENTS = frozenset(
    {
        "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "os.kill",
        "os.killpg", "os.putenv", "os.unsetenv", "os.remove", "os.rename", "os.mkdir", "os.rmdir",
        "os.chmod", "os.chown", "os.chflags", "os.lchflags", "os.symlink", "os.link", "os.truncate",
        "os.utime", "os.setxattr", "os.removexattr", "os.startfile", "os.add_dll_directory",
        "signal.pthread_kill", "sys.settrace", "sys.setprofile", "sys._current_frames",
        "sys.addaudithook", "setopencodehook", "gc.get_objects", "gc.get_referrers",
        "gc.get_referents", "pickle.find_class", "builtins.input", "builtins.input/result",
        "mmap.__new__", "resource.setrlimit", "resource.prlimit", "pty.spawn", "subprocess.Popen",
    }
)  # fmt: skip
_DENIED_PREFIXES = (
    "socket.", "ctypes.", "shutil.", "tempfile.", "fcntl.", "sqlite3.", "urllib.", "http.",
    "ftplib.", "smtplib.", "poplib.", "imaplib.", "nntplib.", "telnetlib.", "webbrowser.",
    "syslog.", "_winapi.", "winreg.", "msvcrt.", "subprocess.", "resource.", "os.exec", "os.spawn",
    "os.posix_spawn",
)  # fmt: skip
_LISTING_EVENTS = frozenset({"os.listdir", "os.scandir", "glob.glob", "glob.glob/2"})
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PROTECTED_PACKAGES = ("afr",)


def _top(name: str) -> str:
    return name.partition(".")[0]


def _normalise(root: str | os.PathLike[str]) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(root)))


def _owner_module(obj: Any) -> str:
    if isinstance(obj, type(sys)):
        return obj.__name__
    klass = obj if isinstance(obj, type) else type(obj)
    return getattr(klass, "__module__", "") or ""


class AuditPolicy:
    """The decision function behind the hook: ``policy(event, args)`` returns or raises PermissionError.

    Kept separate from :func:`install_audit_hook` so it can be tested without sandboxing the test process.
    """

    def __init__(
        self, allowed_read_roots: Iterable[str | os.PathLike[str]], *, protected: Iterable[str] = ()
    ) -> None:
        roots: set[str] = set()
        for root in allowed_read_roots:
            if root:
                # Both spellings: a root may be a symlink, and paths are compared after realpath.
                roots.add(os.path.abspath(os.fspath(root)))
                roots.add(_normalise(root))
        self.roots: tuple[str, ...] = tuple(sorted(roots))
        self.protected: tuple[str, ...] = (*_PROTECTED_PACKAGES, *protected)

    def readable(self, path: Any) -> bool:
        """Whether ``path`` lies under one of the allowed read roots."""
        try:
            resolved = _normalise(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return any(resolved == r or resolved.startswith(r.rstrip(os.sep) + os.sep) for r in self.roots)

    def _protected(self, obj: Any) -> bool:
        name = _owner_module(obj)
        return any(name == p or name.startswith(p + ".") for p in self.protected)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "open":
            self._check_open(args)
        elif event in _DENIED_EVENTS or event.startswith(_DENIED_PREFIXES):
            raise PermissionError(f"sandbox refused {event}: not allowed inside a recipe run")
        elif event == "import":
            if _top(str(args[0])) in DENIED_IMPORTS:
                raise PermissionError(f"sandbox refused import of {args[0]!r}")
        elif event in _LISTING_EVENTS:
            path = args[0] if args and args[0] is not None else "."
            if isinstance(path, int) or not self.readable(path):
                raise PermissionError(f"sandbox refused {event} of {path!r}: outside the allowed read roots")
        elif event in ("object.__setattr__", "object.__delattr__") and args and self._protected(args[0]):
            raise PermissionError(f"sandbox refused {event} {args[1]!r} on an engine object")

    def _check_open(self, args: tuple[Any, ...]) -> None:
        path = args[0] if args else None
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITE_FLAGS)
        if writes:
            raise PermissionError(f"sandbox refused open of {path!r} for writing: recipe runs write no files")
        if isinstance(path, int):
            return  # reading an already open descriptor
        if path is None or not self.readable(path):
            raise PermissionError(f"sandbox refused open of {path!r}: outside the allowed read roots")


def install_audit_hook(
    allowed_read_roots: Iterable[str | os.PathLike[str]], *, protected: Iterable[str] = ()
) -> AuditPolicy:
    """Install :class:`AuditPolicy` as a process-wide audit hook (irreversible; children only).

    ``protected``: extra package names whose objects' ``__class__``/``__bases__`` may not be reassigned.
    """
    policy = AuditPolicy(allowed_read_roots, protected=protected)
    sys.addaudithook(policy)
    return policy


def denied_module_names(modules: Iterable[str] | None = None) -> list[str]:
    """The loaded modules :func:`purge_denied_modules` drops: :data:`DENIED_IMPORTS` and their submodules."""
    return [name for name in (sys.modules if modules is None else modules) if _top(name) in DENIED_IMPORTS]


def purge_denied_modules(
    names: Iterable[str] | None = None, modules: dict[str, Any] | None = None
) -> list[str]:
    """Drop denied modules from ``sys.modules`` (or ``modules``), so that reaching them by ``importlib``
    means a fresh import, which the hook refuses. Returns the names dropped.

    ``names``: precomputed :func:`denied_module_names` -- a forked child then touches ~40 entries
    instead of every module (each touch copies a page shared with the zygote).
    """
    table = sys.modules if modules is None else modules
    dropped = [name for name in (denied_module_names(table) if names is None else names) if name in table]
    for name in dropped:
        del table[name]
    return dropped


def guarded_builtins(base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the builtins whose ``__import__`` refuses :data:`DENIED_IMPORTS` even when loaded."""
    table = dict(vars(builtins) if base is None else base)
    real_import: Callable[..., Any] = table["__import__"]

    def __import__(name: str, globals=None, locals=None, fromlist=(), level=0):  # noqa: A001
        if level == 0 and _top(name) in DENIED_IMPORTS:
            raise PermissionError(f"sandbox refused import of {name!r}")
        return real_import(name, globals, locals, fromlist, level)

    table["__import__"] = __import__
    return table
