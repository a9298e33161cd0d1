"""User-facing errors: each says what went wrong, where, and how to fix it.

:func:`storage_error` is the one place where the file system's refusals (disk full, read-only, a name too
long), wherever they surface -- a raw ``OSError``, SQLite's "database or disk is full" inside SQLAlchemy's
``OperationalError``, Optuna's ``StorageInternalError`` around it -- become a :class:`StorageError` with the
right fix.
"""

from __future__ import annotations

import errno
import os

__all__ = [
    "AFRError",
    "ConfigError",
    "EndpointError",
    "DataError",
    "ChecksumError",
    "TrainingFailure",
    "RunsFailed",
    "CampaignFailure",
    "StorageError",
    "storage_error",
]


class AFRError(Exception):
    """Base of every error AFR reports to a user as one clear message (no traceback)."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [self.what]
        if self.where:
            parts.append(f"(in {self.where})")
        text = " ".join(parts)
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigError(AFRError):
    """A malformed or unknown configuration value."""


class EndpointError(ConfigError):
    """An LLM agent's endpoint cannot serve the campaign: no server answers at its URL, the key is refused,
    or the model is unknown there (exit code 2: a setup to fix; nothing was run or charged).

    Told on one line (``what (in where); fix: ...``): it is the whole story, and the URL must stay visible."""

    @property
    def message(self) -> str:
        text = self.what
        if self.where:
            text += f" (in {self.where})"
        return f"{text}; fix: {self.fix}" if self.fix else text


class DataError(AFRError):
    """Data missing, unreadable, or not in the expected format."""


class ChecksumError(DataError):
    """A downloaded file does not match its published checksum."""


class TrainingFailure(AFRError):
    """A federated run could not finish (non-finite loss or weights, budget breach)."""


class RunsFailed(AFRError):
    """Runs were made and none gave a result (exit code 1, not 2: the input was well formed)."""


class CampaignFailure(RunsFailed):
    """A campaign cannot go on, or ended with nothing to compare: its preflight run of the baseline failed,
    the baseline's first search run failed, or an arm has no successful run."""


class StorageError(AFRError):
    """The file system refused: disk full, a read-only or inaccessible folder, or a name too long."""


_FULL = (
    "free space on that disk (or choose a campaign.dir=... on another), then run the same command to resume"
)
_READ_ONLY = "choose a writable campaign.dir=... (or make that folder writable), then run the command again"
_DENIED = (
    "give this user access to that path, or choose a campaign.dir=... (or data_dir=...) this user may use, "
    "then run the command again"
)
_LONG = "choose a shorter campaign.name=... (or a shorter campaign.dir=...)"
# errno -> what failed (a full sentence after "cannot ...") and the fix.
_ERRNO_FIXES: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("write: the disk is full", _FULL),
    errno.EROFS: ("write: the file system is read-only", _READ_ONLY),
    errno.EACCES: ("access a file: permission denied", _DENIED),
    errno.EPERM: ("access a file: operation not permitted", _DENIED),
    errno.ENAMETOOLONG: ("make a file: its name is too long", _LONG),
}
if hasattr(errno, "EDQUOT"):
    _ERRNO_FIXES[errno.EDQUOT] = ("write: the disk quota is exceeded", _FULL)
# SQLite reports these as text (sqlite3.OperationalError has no errno); lower-cased substrings.
_SQLITE_FIXES: dict[str, int] = {
    "database or disk is full": errno.ENOSPC,
    "attempt to write a readonly database": errno.EROFS,
    "readonly database": errno.EROFS,
    "unable to open database file": errno.EACCES,  # its folder is not writable (or not there)
}


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its causes and contexts, and the driver errors SQLAlchemy keeps in ``.orig``."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [
            e
            for e in (getattr(current, "orig", None), current.__cause__, current.__context__)
            if isinstance(e, BaseException)
        ]
    return seen


def storage_error(exc: BaseException, *, where: str | os.PathLike[str] | None = None) -> StorageError | None:
    """The :class:`StorageError` ``exc`` stands for -- disk full or over quota, a read-only or unwritable
    folder, a name too long -- or None when it is something else.

    ``exc`` may be an ``OSError`` or anything that wraps one or an SQLite error (its cause, context or
    ``.orig`` is followed). ``where`` names the path when the error itself does not (SQLite never does).
    """
    for error in _chain(exc):
        if isinstance(error, StorageError):
            return error
        code: int | None = None
        path = None
        if isinstance(error, OSError) and error.errno in _ERRNO_FIXES:
            code, path = error.errno, error.filename
        elif type(error).__module__ in ("sqlite3", "_sqlite3") or "sqlite" in type(error).__module__:
            text = str(error).lower()
            code = next((c for key, c in _SQLITE_FIXES.items() if key in text), None)
        if code is None:
            continue
        what, fix = _ERRNO_FIXES[code]
        # An OSError's errno says it all; SQLite's own words are kept (they name what it was doing).
        detail = "" if isinstance(error, OSError) else f" (SQLite: {error})"
        return StorageError(f"cannot {what}{detail}", where=str(path or where or "") or None, fix=fix)
    return None
