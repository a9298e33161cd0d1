"""The sandbox: every candidate recipe trains in a sealed child process forked from a warm zygote.

Dependency rule: the sandbox imports the engine, never the other way round; it knows nothing of
ledgers, budgets or agents. Use :class:`SandboxPool` to run :class:`RunJob` s and read
:class:`afr.engine.RunResult` s.

What it guarantees
  * The child never holds the test split: the zygote loads only ``fit``/``val``/``train`` and calls
    ``Profile.forget_test()`` before any fork.
  * The child's environment is clean (PATH, LANG, a private HOME, thread and hash settings): no
    API keys, tokens or proxy settings of the parent.
  * Wall-clock timeout (SIGKILL), CPU-time, address-space, file-size (0) and open-file limits;
    no core dumps. A child that hangs, crashes or exhausts its memory yields a status, never a
    hung or dead parent; children die with their zygote, the zygote with its parent.
  * The parent only ever reads a child's result with ``torch.load(..., weights_only=True)``.
  * Python-level file writes, reads outside the Python install / afr / data dir, sockets,
    processes, signals, ``ctypes`` and friends are refused by an audit hook (see ``_guard``).
  * Where the zygote may (CAP_SYS_ADMIN), it and its children get an empty network namespace and a
    read-only view of every mount, which also stops native code from writing or connecting.

What it does not guarantee
  * Audit hooks are defence in depth, not a security boundary: native code (torch's C++ file
    readers, crafted bytecode that corrupts the interpreter) is invisible to them, and there is
    no event for monkey-patching modules or classes. The static validator is the first line.
  * The child runs as the same user as the parent; run AFR itself unprivileged or in a container.
  * A child can forge its own curve (it computes it); the caller evaluates test metrics on the
    returned weights itself.
  * Memory limits bound address space, not resident memory, and apply on top of the zygote's own
    (copy-on-write) footprint.
"""

from ._guard import install_audit_hook
from ._jobs import RunJob
from ._pool import SandboxPool

__all__ = ["RunJob", "SandboxPool", "install_audit_hook"]
