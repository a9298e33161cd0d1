"""The campaign lock: one process at a time on a campaign directory, and it says who holds it.

``campaign_lock(directory)`` takes an exclusive ``flock`` on ``<directory>/campaign.lock`` (beside
``ledger.db``) and writes its owner into the file: pid, host, start time and command. A second process
gets a :class:`CampaignLockedError` naming that owner and the fix, before it opens the ledger or Optuna's
study. The lock lives in the campaign directory, not in the database, so it works the same whether the
ledger is the SQLite file of that directory or a server database (PostgreSQL) the directory points to.

Stale locks. The kernel drops an ``flock`` when its holder's descriptors close, so a process killed by
SIGKILL or a power cut leaves only a file whose owner is gone: the next process takes the lock and
reports what it recovered (:attr:`CampaignLock.recovered`). The descriptor is close-on-exec, so the
sandbox's zygote (started with ``subprocess``) never holds it; should a forked child of a dead owner
still hold it, the lock is broken too when the recorded owner pid is gone on this host.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import storage_error
from ._ledger import LedgerError

__all__ = ["LOCK_FILE", "CampaignLock", "CampaignLockedError", "LockOwner", "campaign_lock"]

LOCK_FILE = "campaign.lock"
_GUARD_FILE = ".campaign.lock.guard"  # serialises breaking a lock a dead owner's child still holds


class CampaignLockedError(LedgerError):
    """Another process holds the campaign lock (its owner is named in the message)."""


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or last held) a campaign lock."""

    pid: int
    host: str
    since: str
    command: str = ""

    def describe(self) -> str:
        """``pid 123 on host h since 2026-01-01 10:00:00 UTC (python -m afr.run ...)``"""
        text = f"pid {self.pid} on host {self.host} since {self.since}"
        return text + (f" ({self.command})" if self.command else "")

    def gone(self) -> bool:
        """True if the owner ran on this host and its process no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # exists, someone else's
            return False
        return False


def _me() -> LockOwner:
    command = " ".join([Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]])
    if len(command) > 120:
        command = command[:117] + "..."
    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return LockOwner(os.getpid(), socket.gethostname(), since, command)


def _read_owner(fd: int) -> LockOwner | None:
    try:
        data = json.loads(os.pread(fd, 65536, 0).decode() or "null")
        return LockOwner(
            int(data["pid"]), str(data["host"]), str(data["since"]), str(data.get("command", ""))
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None  # empty (the owner has not written yet) or not ours


class CampaignLock:
    """An exclusive lock on a campaign directory; :meth:`acquire` it, :meth:`release` it (or ``with``)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.path = self.directory / LOCK_FILE
        self.recovered: LockOwner | None = None
        """The owner of a stale lock this process took over (its process had ended without releasing)."""
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> CampaignLock:
        """Take the lock or raise :class:`CampaignLockedError` naming its owner (never waits)."""
        if self._fd is not None:
            return self
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, where=self.directory) or LedgerError(
                f"cannot create the campaign directory: {exc.strerror or exc}",
                where=str(self.directory),
                fix="choose a writable campaign.dir=...",
            ) from None
        broken: LockOwner | None = None
        for _ in range(20):  # each retry follows a release or a broken stale lock; a few suffice
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise storage_error(exc, where=self.path) or LedgerError(
                    f"cannot create the campaign lock: {exc.strerror or exc}",
                    where=str(self.path),
                    fix="choose a writable campaign.dir=... on a local disk",
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(fd)
                inode = os.fstat(fd).st_ino
                os.close(fd)
                if owner is not None and owner.gone() and self._break(inode):
                    broken = owner
                    continue
                raise self._locked(owner) from None
            except OSError as exc:  # e.g. a network file system without locks
                os.close(fd)
                raise LedgerError(
                    f"cannot lock the campaign: {exc.strerror or exc}",
                    where=str(self.path),
                    fix="put campaign.dir=... on a local disk",
                ) from None
            # The previous holder may have removed the file between our open and our flock: then we
            # locked an orphaned inode and must start again on the file the path names now.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _read_owner(fd)
            if previous is not None and previous.pid != os.getpid():
                self.recovered = previous
            elif broken is not None:
                self.recovered = broken
            me = _me()
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(vars(me)).encode(), 0)
            self._fd = fd
            return self
        raise LedgerError(
            "could not take the campaign lock: it changed hands 20 times in a row",
            where=str(self.path),
            fix="make sure only one process works on this campaign.dir, then run the command again",
        )

    def _break(self, inode: int) -> bool:
        """Remove a lock file held (through an inherited descriptor) for an owner that is gone."""
        guard = os.open(self.directory / _GUARD_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_ino != inode:
                    return True  # someone else broke it already: retry on the new file
            except FileNotFoundError:
                return True
            os.unlink(self.path)
            return True
        finally:
            os.close(guard)

    def _locked(self, owner: LockOwner | None) -> CampaignLockedError:
        who = owner.describe() if owner is not None else "another process (it has not recorded itself yet)"
        kill = f"stop it (kill {owner.pid})" if owner is not None else "stop it"
        return CampaignLockedError(
            f"the campaign is already running: {who} holds its lock",
            where=str(self.path),
            fix=f"wait for that process to finish or {kill}, then run the same command to resume; "
            "for a second campaign give it another campaign.dir=...",
        )

    def release(self) -> None:
        """Release the lock and remove the lock file (nothing happens if it is not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            # Remove while still locked, so nobody takes a lock on a file that is about to vanish
            # (acquire() checks the inode after locking for the same reason).
            if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                os.unlink(self.path)
        os.close(fd)

    def __enter__(self) -> CampaignLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()

    def note(self) -> str:
        """One line about a recovered stale lock ('' when there was none)."""
        if self.recovered is None:
            return ""
        return f"note: recovered the stale campaign lock of {self.recovered.describe()}: that process is gone"


def campaign_lock(directory: str | Path) -> CampaignLock:
    """Take the lock of the campaign in ``directory`` (created if needed); raises
    :class:`CampaignLockedError` naming the owner if another process holds it."""
    return CampaignLock(directory).acquire()
