"""Progress of a campaign: FL runs done / budgeted per arm in the search, and of the finals, with an ETA.

On a terminal it is a live ``rich`` display (one bar per account, redrawn in place); anywhere else (CI, a
pipe, a log file) it is plain text lines, one each time a tenth of a stage's runs is done and one when the
stage ends, e.g. ``search: 12/40 runs (agent 6/20, control 6/20), ETA 3m`` -- never control characters.

``rich`` (already a dependency) rather than tqdm: one live display holds several bars that two worker
threads advance, and lines printed meanwhile (the per-run console lines) go above the bars instead of
tearing them; with tqdm every print would have to go through ``tqdm.write``.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

__all__ = ["CampaignProgress", "format_eta", "print_line"]

SEARCH_ARMS = ("agent", "control")

_PRINT_LOCK = threading.Lock()


def print_line(line: str, stream: IO[str] | None = None) -> None:
    """Print one console line from any thread: text and newline in one write, under one lock.

    ``print`` writes the text and the newline separately, so the two arms' threads could run their lines
    together (``...server_lr=0.0355[  agent] run 2/2 ...``). ``stream`` None is ``sys.stdout`` as it is at
    the call (the live display swaps it to print above its bars).
    """
    with _PRINT_LOCK:
        out = stream if stream is not None else sys.stdout
        out.write(line + "\n")
        out.flush()


def format_eta(seconds: float | None) -> str:
    """``45s``, ``3m``, ``1h05m``; ``?`` while unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{round(seconds / 60)}m"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m"


@dataclass
class _Count:
    total: int
    done: int
    start_done: int
    """Runs already done when this process started counting (a resume): not part of the rate."""
    started: float


class CampaignProgress:
    """Runs done / total per account (``agent``, ``control``, ``finals``) with an ETA from this process's
    own rate; thread-safe. Use as a context manager: the live display (if any) ends on exit.

    ``force_terminal``: True draws the live display even into a buffer (tests), False never does; None asks
    the stream (``isatty``, ``TERM=dumb`` and the like, as ``rich`` judges it).
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        force_terminal: bool | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        from rich.console import Console

        self.stream = stream if stream is not None else sys.stderr
        self.console = Console(file=self.stream, force_terminal=force_terminal)
        self.live = bool(self.console.is_terminal and not self.console.is_dumb_terminal)
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, _Count] = {}
        self._told: dict[str, int] = {}  # stage -> the last tenth a plain line was printed for
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> CampaignProgress:
        self.open()
        return self

    def open(self) -> None:
        """Start the live display (on a terminal; idempotent). :meth:`start` calls it."""
        if self.live and self._bars is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bars = Progress(
                TextColumn("{task.description:<14}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("runs  ETA"),
                TimeRemainingColumn(),
                console=self.console,
                # print() calls of the campaign (its per-run lines) go above the bars
                redirect_stdout=True,
                redirect_stderr=False,
            )
            self._bars.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._bars is not None:
                self._bars.stop()
                self._bars = None

    # --- counting --------------------------------------------------------------------------------

    def start(self, account: str, total: int, done: int = 0) -> None:
        """Begin counting ``account`` (``done`` of ``total`` runs are already done, e.g. on a resume)."""
        self.open()
        with self._lock:
            self._counts[account] = _Count(int(total), int(done), int(done), self._clock())
            if self._bars is not None:
                label = f"search {account}" if account in SEARCH_ARMS else account
                self._tasks[account] = self._bars.add_task(label, total=max(total, 1), completed=done)
            self._told.setdefault(self._stage(account), -1)

    def update(self, account: str, done: int, total: int | None = None) -> None:
        """``done`` runs of ``account`` are done now (``total``: a new total, e.g. an arm stopped early)."""
        with self._lock:
            count = self._counts.get(account)
            if count is None:
                return
            count.done = int(done)
            if total is not None:
                count.total = int(total)
            if self._bars is not None:
                self._bars.update(self._tasks[account], completed=count.done, total=max(count.total, 1))
                return
            self._maybe_tell(self._stage(account))

    def advance(self, account: str, runs: int = 1) -> None:
        """One more run (or ``runs``) of ``account`` is done."""
        with self._lock:
            count = self._counts.get(account)
            done = None if count is None else count.done + runs
        if done is not None:
            self.update(account, done)

    # --- what is said ----------------------------------------------------------------------------

    @staticmethod
    def _stage(account: str) -> str:
        return "search" if account in SEARCH_ARMS else account

    def _members(self, stage: str) -> Mapping[str, _Count]:
        return {a: c for a, c in self._counts.items() if self._stage(a) == stage}

    def eta(self, stage: str) -> float | None:
        """Seconds left in ``stage`` (``search`` or ``finals``) at this process's own rate; None: unknown."""
        members = self._members(stage)
        if not members:
            return None
        now = self._clock()
        etas = []
        for count in members.values():
            left = max(count.total - count.done, 0)
            if left == 0:
                continue
            ran = count.done - count.start_done
            if ran <= 0:
                return None
            # the arms run side by side: the stage ends when the slower one does
            etas.append((now - count.started) / ran * left)
        return max(etas, default=0.0)

    def line(self, stage: str) -> str:
        """``search: 12/40 runs (agent 6/20, control 6/20), ETA 3m`` / ``finals: 8/25 runs, ETA 5m``."""
        members = self._members(stage)
        done = sum(c.done for c in members.values())
        total = sum(c.total for c in members.values())
        text = f"{stage}: {done}/{total} runs"
        if len(members) > 1:
            text += " (" + ", ".join(f"{a} {c.done}/{c.total}" for a, c in members.items()) + ")"
        return text + (", done" if done >= total else f", ETA {format_eta(self.eta(stage))}")

    def _maybe_tell(self, stage: str) -> None:
        """A plain line when the stage crosses another tenth of its runs, and when it ends."""
        members = self._members(stage)
        done = sum(c.done for c in members.values())
        total = sum(c.total for c in members.values())
        if total <= 0:
            return
        tenth = 10 if done >= total else (10 * done) // total
        if tenth > self._told.get(stage, -1) and done > 0:
            self._told[stage] = tenth
            print_line(self.line(stage), self.stream)
