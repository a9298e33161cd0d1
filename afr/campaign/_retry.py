"""Retrying a failed campaign under its own name.

A campaign whose search failed (its baseline broke after the preflight, or an arm had no successful run) is
recorded ``failed`` in its ledger. Running the same command again after fixing the cause starts a new
*attempt* in the same campaign directory: the failed attempt's records (ledger, Optuna studies, artifacts,
curves, report) move, untouched, to ``<campaign dir>/attempts/<n>/``, where ``afr report`` still reads them,
and the new attempt records its number in its config (``attempt``). Nothing of a failed attempt is
rewritten or deleted: its failed runs stay recorded as they ran.

A campaign whose records are in a database (``campaign.storage=``) keeps them there: the failed attempt's
files move to ``attempts/<n>/`` as above, and in the database the campaign and its two Optuna studies are
renamed, in one transaction, to ``<name>/attempt-<n>`` (``<name>/attempt-<n>/control``…), where
``afr report <url> --campaign <name>/attempt-<n>`` still reads them; the name is free for the next attempt.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..ledger import LEDGER_FILE, LOCK_FILE, Ledger, campaign_lock
from ._progress import print_line

__all__ = ["ATTEMPTS_DIR", "attempt_number", "archive_failed_attempt", "attempt_name", "study_name"]

ATTEMPTS_DIR = "attempts"
"""Where a campaign keeps its failed attempts, inside its directory (``attempts/1``, ``attempts/2``…)."""

_KEEP = {ATTEMPTS_DIR, LOCK_FILE, f".{LOCK_FILE}.guard"}  # never moved: the archive itself and the lock
_ARMS = ("control", "agent")


def study_name(campaign: str, arm: str) -> str:
    """The Optuna study of an arm of a campaign: ``<campaign>/control``, ``<campaign>/agent``."""
    return f"{campaign}/{arm}"


def attempt_name(campaign: str, attempt: int) -> str:
    """The name a failed attempt of a campaign keeps in a shared database: ``<campaign>/attempt-<n>``."""
    return f"{campaign}/attempt-{attempt}"


def _archived(directory: Path) -> list[int]:
    folder = directory / ATTEMPTS_DIR
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def attempt_number(directory: str | Path) -> int:
    """The number of the attempt that runs (or resumes) in ``directory``: 1 + its archived failed attempts."""
    return len(_archived(Path(directory))) + 1


def _open(directory: Path, storage: str | None) -> Ledger | None:
    """The campaign's ledger: the database at ``storage``, else the directory's (None: it has none yet)."""
    if storage is not None:
        return Ledger(storage)
    return Ledger.for_campaign_dir(directory) if (directory / LEDGER_FILE).is_file() else None


def _status(directory: Path, name: str, storage: str | None = None) -> str | None:
    """The recorded status of campaign ``name`` (None: no ledger, or not there)."""
    ledger = _open(directory, storage)
    if ledger is None:
        return None
    try:
        record = ledger.campaign_by_name(name)
    finally:
        ledger.close()
    return None if record is None else record.status


def archive_failed_attempt(
    directory: str | Path,
    name: str,
    *,
    echo: Callable[[str], None] = print_line,
    storage: str | None = None,
) -> Path | None:
    """If campaign ``name`` ended ``failed``, move its files to ``<directory>/attempts/<n>/`` (and, with
    ``storage``, rename its records in that database to ``<name>/attempt-<n>``) so that the same command
    starts attempt n + 1, and return that folder; else (new, running, interrupted, finished) leave everything
    as is and return None.

    The move is done under the campaign lock (a second process on the campaign stops here with the owner's
    name); a campaign that did not fail is not locked here at all (the campaign takes its lock itself).
    """
    folder = Path(directory).expanduser().resolve()
    if _status(folder, name, storage) != "failed":
        return None
    lock = campaign_lock(folder)
    try:
        if lock.recovered is not None:
            echo(lock.note())
        if _status(folder, name, storage) != "failed":  # another process retried it meanwhile
            return None
        archived = _archived(folder)
        number = (archived[-1] if archived else 0) + 1
        target = folder / ATTEMPTS_DIR / str(number)
        target.mkdir(parents=True)
        for entry in sorted(folder.iterdir()):
            if entry.name not in _KEEP:
                os.replace(entry, target / entry.name)  # same file system: atomic per entry, nothing copied
        if storage is not None:
            # After the files: a stop in between leaves the campaign failed under its name, and the same
            # command archives it again (its files then in two numbered folders, nothing lost).
            ledger = Ledger(storage)
            try:
                record = ledger.campaign_by_name(name)
                assert record is not None
                renamed = attempt_name(name, number)
                studies = {study_name(name, arm): study_name(renamed, arm) for arm in _ARMS}
                ledger.rename_campaign(record.id, renamed, studies=studies)
            finally:
                ledger.close()
        return target
    finally:
        lock.release()
