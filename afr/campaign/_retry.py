"""Retrying a failed campaign under its own name.

A campaign whose search failed (its baseline broke after the preflight, or an arm had no successful run) is
recorded ``failed`` in its ledger. Running the same command again after fixing the cause starts a new
*attempt* in the same campaign directory: the failed attempt's records (ledger, Optuna studies, artifacts,
curves, report) move, untouched, to ``<campaign dir>/attempts/<n>/``, where ``afr report`` still reads them,
and the new attempt records its number in its config (``attempt``). Nothing of a failed attempt is
rewritten or deleted: its failed runs stay recorded as they ran.

A campaign whose records are in a database (``campaign.storage=``) cannot move them into a folder: a failed
one there is not retried under its name (one line says so; a new ``campaign.name`` starts afresh).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import ConfigError
from ..ledger import LEDGER_FILE, LOCK_FILE, Ledger, campaign_lock

__all__ = ["ATTEMPTS_DIR", "attempt_number", "archive_failed_attempt"]

ATTEMPTS_DIR = "attempts"
"""Where a campaign keeps its failed attempts, inside its directory (``attempts/1``, ``attempts/2``…)."""

_KEEP = {ATTEMPTS_DIR, LOCK_FILE, f".{LOCK_FILE}.guard"}  # never moved: the archive itself and the lock


def _archived(directory: Path) -> list[int]:
    folder = directory / ATTEMPTS_DIR
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def attempt_number(directory: str | Path) -> int:
    """The number of the attempt that runs (or resumes) in ``directory``: 1 + its archived failed attempts."""
    return len(_archived(Path(directory))) + 1


def _status(directory: Path, name: str) -> str | None:
    """The recorded status of campaign ``name`` in the directory's ledger (None: no ledger, or not there)."""
    if not (directory / LEDGER_FILE).is_file():
        return None
    ledger = Ledger.for_campaign_dir(directory)
    try:
        record = ledger.campaign_by_name(name)
    finally:
        ledger.close()
    return None if record is None else record.status


def _refuse_failed_in_database(storage: str, name: str) -> None:
    """A ``ConfigError`` if campaign ``name`` is recorded ``failed`` in the database at ``storage``."""
    ledger = Ledger(storage)
    try:
        record = ledger.campaign_by_name(name)
    finally:
        ledger.close()
    if record is not None and record.status == "failed":
        raise ConfigError(
            f"campaign {name!r} failed last time; a failed campaign whose records are in a database is not "
            "retried under its name (its records cannot move to attempts/ as a ledger.db can)",
            where=repr(ledger),
            fix="run it under a new campaign.name=... (the failed one stays recorded, `afr report` reads it)",
        )


def archive_failed_attempt(
    directory: str | Path,
    name: str,
    *,
    echo: Callable[[str], None] = print,
    storage: str | None = None,
) -> Path | None:
    """If campaign ``name`` in ``directory`` ended ``failed``, move its records to ``attempts/<n>/`` (so the
    same command starts attempt n + 1) and return that folder; else (new, running, interrupted, finished)
    leave everything as is and return None.

    The move is done under the campaign lock (a second process on the campaign stops here with the owner's
    name); a campaign that did not fail is not locked here at all (the campaign takes its lock itself).
    With ``storage`` (a database URL) nothing moves: a failed campaign there is a ``ConfigError``.
    """
    if storage is not None:
        _refuse_failed_in_database(storage, name)
        return None
    folder = Path(directory).expanduser().resolve()
    if _status(folder, name) != "failed":
        return None
    lock = campaign_lock(folder)
    try:
        if lock.recovered is not None:
            echo(lock.note())
        if _status(folder, name) != "failed":  # another process retried it meanwhile
            return None
        archived = _archived(folder)
        target = folder / ATTEMPTS_DIR / str((archived[-1] if archived else 0) + 1)
        target.mkdir(parents=True)
        for entry in sorted(folder.iterdir()):
            if entry.name not in _KEEP:
                os.replace(entry, target / entry.name)  # same file system: atomic per entry, nothing copied
        return target
    finally:
        lock.release()
