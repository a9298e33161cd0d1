"""Stopping a campaign on SIGINT / SIGTERM without losing or mislabelling a run, however many signals arrive.

The first signal asks the campaign to stop: a helper thread closes the sandbox pool (the runs in flight end
with :class:`~afr.sandbox.SandboxClosed`: no outcome, so they stay reserved and the same command re-runs
them; an agent's call in flight is abandoned), and the main thread stops at its next safe point
(:meth:`StopSignals.check`): a signal never unwinds it half-way through its ledger writes. Every later
signal is ignored: the campaign is already stopping, and its clean-up (finishing the runs that had ended,
marking the campaign interrupted, freeing the lock) must not itself be cut short. Once stopped, the
process ignores both signals (SIG_IGN) for good: it is on its way out, and a last Ctrl-C must not turn its
one-line exit into a traceback or a death by signal.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["StopSignals"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """SIGINT/SIGTERM handling for the main thread of a campaign (a no-op in any other thread).

    ``on_stop`` runs once, in a helper thread (a signal handler must not take the locks the interrupted
    code may hold), when the first signal arrives or :meth:`request` is called.
    """

    def __init__(self, on_stop: Callable[[], None]) -> None:
        self._on_stop = on_stop
        self.requested = threading.Event()
        self.signum: int | None = None
        self._go = threading.Event()
        self._stopper: threading.Thread | None = None
        self._previous: dict[int, Any] = {}
        self._depth = 0

    # --- installing ------------------------------------------------------------------------------

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        if self._depth == 0:
            if self._stopper is None:
                self._stopper = threading.Thread(target=self._stop, name="afr-stop", daemon=True)
                self._stopper.start()
            for signum in SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        if threading.current_thread() is not threading.main_thread() or self._depth == 0:
            return
        self._depth -= 1
        if self._depth:
            return
        for signum, previous in self._previous.items():
            # After a stop the process is leaving: later signals stay ignored (see the module docstring).
            signal.signal(signum, signal.SIG_IGN if self.requested.is_set() else previous)
        self._previous.clear()

    # --- the signal ------------------------------------------------------------------------------

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.requested.is_set():
            return  # already stopping: a second (third, ...) signal changes nothing
        self.request(signum)
        # From now on the kernel drops both signals. SIG_IGN, not a Python handler: the interpreter resets
        # Python-level handlers to the default while it shuts down, and a last Ctrl-C landing then would
        # kill the process (exit -2) after its one-line message; an ignored signal stays ignored.
        for other in SIGNALS:
            signal.signal(other, signal.SIG_IGN)

    def request(self, signum: int | None = None) -> None:
        """Ask the campaign to stop (what the first signal does); idempotent."""
        if self.requested.is_set():
            return
        self.signum = signum
        self.requested.set()
        if self._stopper is not None:
            self._go.set()
        else:  # never installed (not the main thread): stop in this thread
            self._run_on_stop()

    def _stop(self) -> None:
        self._go.wait()
        self._run_on_stop()

    def _run_on_stop(self) -> None:
        with contextlib.suppress(Exception):  # stopping is best effort; the ledger stays consistent anyway
            self._on_stop()

    def wait_stopped(self, timeout_s: float = 60.0) -> None:
        """Wait until ``on_stop`` has run (after :meth:`request`)."""
        if self._stopper is not None and self.requested.is_set():
            self._stopper.join(timeout_s)

    # --- where the main thread may stop ----------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`KeyboardInterrupt` if a stop was requested (a safe point of the main thread)."""
        if self.requested.is_set():
            raise KeyboardInterrupt
