"""The ``Ledger``: short, thread-safe transactions over the campaign tables.

Concurrency. One ``sessionmaker`` per ledger, a new session per call. Every write runs in
:meth:`Ledger.write_session`, which serialises writers three ways:

* a module-level ``threading.RLock`` per database URL (shared by every ``Ledger`` on that URL in this
  process), so threads queue on a lock instead of spinning in SQLite's busy handler;
* on SQLite, ``BEGIN IMMEDIATE``: the write lock on the database file is taken when the transaction
  starts, so a check-then-insert cannot interleave with another process's (SQLite's WAL mode still lets
  readers run meanwhile; writers in other processes wait up to the busy timeout);
* on server databases, ``SELECT ... FOR UPDATE`` of the campaign row when a ``campaign_id`` is given, so
  writers of one campaign queue on that row (a no-op on SQLite, which has no row locks).

SQLite: the pysqlite driver's own transaction handling is switched off (``isolation_level = None``) and
SQLAlchemy emits ``BEGIN`` / ``BEGIN IMMEDIATE`` itself, as the SQLAlchemy SQLite dialect documentation
recommends; each connection gets ``journal_mode=WAL``, a busy timeout and ``foreign_keys=ON``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Connection, Engine, create_engine, event, func, inspect, select, text, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.orm import Session, sessionmaker

from .._mappings import flatten
from .._url import is_database_url
from ..errors import AFRError, ConfigError, storage_error
from ._models import (
    ADDED_TABLES,
    SCHEMA_VERSION,
    Base,
    CampaignRow,
    CandidateRow,
    CostRow,
    LlmCallRow,
    MetaRow,
    NoteRow,
    RunRow,
    WorkerRow,
    utcnow,
)
from ._names import NUMBER_KEY, candidate_name

WORKER_KEY = "worker"
"""The candidate meta key naming the worker that runs it (shared campaigns only)."""

__all__ = [
    "Ledger",
    "LedgerError",
    "CampaignRecord",
    "CandidateRecord",
    "RunRecord",
    "CAMPAIGN_STATUSES",
    "Arm",
    "ARMS",
    "Account",
    "ACCOUNTS",
    "CANDIDATE_STATUSES",
    "RUN_STAGES",
    "RUN_STATUSES",
    "COST_KINDS",
    "config_hash",
    "LEDGER_FILE",
    "is_database_url",
    "check_storage_url",
    "open_ledger",
    "find_campaign",
    "WORKER_KEY",
]

CAMPAIGN_STATUSES = ("running", "finished", "interrupted", "failed")
Arm = Literal["agent", "control"]
ARMS: tuple[Arm, ...] = ("agent", "control")
"""The two search arms; every candidate belongs to one (the baseline is the control's trial 0)."""
Account = Literal["agent", "control", "finals"]
ACCOUNTS: tuple[Account, ...] = (*ARMS, "finals")
"""What the budget accountant charges and costs are booked to: each arm's search, and the finals."""
CANDIDATE_STATUSES = ("proposed", "rejected", "duplicate", "accepted", "running", "ok", "failed")
FAILED_CANDIDATE_STATUSES = ("rejected", "failed")
RUN_STAGES = ("search", "final", "heldout")
RUN_STATUSES = ("reserved", "running", "ok", "failed", "timeout", "memory", "crashed")
RUN_END_STATUSES = ("ok", "failed", "timeout", "memory", "crashed")
COST_KINDS = ("llm", "compute")

_COST_TOTAL_KEYS = ("entries", "llm_calls", "prompt_tokens", "completion_tokens", "money_usd")

LEDGER_FILE = "ledger.db"
_WRITE_OPTION = "afr_write"  # connection execution option: this transaction writes (BEGIN IMMEDIATE)

_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_GUARD = threading.Lock()
_LEDGERS: weakref.WeakSet[Ledger] = weakref.WeakSet()


def _lock_for(key: str) -> threading.RLock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = threading.RLock()
        return lock


def _after_fork_in_child() -> None:
    # A forked child must not share the parent's pooled connections (SQLAlchemy's advice:
    # dispose(close=False)), nor inherit a lock some other parent thread held at fork time.
    global _LOCKS_GUARD
    _LOCKS_GUARD = threading.Lock()
    _LOCKS.clear()
    for ledger in list(_LEDGERS):
        ledger.engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class LedgerError(AFRError):
    """The ledger was asked for something it does not hold, or its database failed."""


def _added_since(version: int) -> list[str]:
    """Tables added by the schema versions after ``version``."""
    return [name for v, names in sorted(ADDED_TABLES.items()) if v > version for name in names]


# --- snapshots ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignRecord:
    """A campaign row, detached from any session."""

    id: int
    name: str
    profile: str
    agent: str
    config: dict[str, Any]
    config_hash: str
    created_at: datetime
    status: str
    finished_at: datetime | None


@dataclass(frozen=True)
class CandidateRecord:
    """A candidate row, detached from any session."""

    id: int
    campaign_id: int
    arm: str
    agent: str
    parent_id: int | None
    source: str
    diff: str
    ast_hash: str
    scalars: dict[str, Any] | None
    status: str
    reasons: tuple[str, ...]
    duplicate_of: int | None
    created_at: datetime
    score: float | None
    meta: dict[str, Any]

    @property
    def number(self) -> int:
        """The candidate's number within its arm (its row id in a ledger written before those numbers)."""
        return int(self.meta.get(NUMBER_KEY, self.id))

    @property
    def name(self) -> str:
        """The candidate's one name everywhere (``agent#30``, ``control#12``, ``baseline#1``)."""
        return candidate_name(self.arm, self.number, self.meta.get("proposal_key"))


@dataclass(frozen=True)
class RunRecord:
    """A run row, detached from any session."""

    id: int
    campaign_id: int
    candidate_id: int
    run_key: str
    seed: int
    stage: str
    split: str
    status: str
    per_round: tuple[dict[str, Any], ...] | None
    final_metric: float | None
    runtime_s: float | None
    steps: int | None
    bytes_up: int | None
    bytes_down: int | None
    artifacts: dict[str, str] | None
    message: str | None
    started_at: datetime
    finished_at: datetime | None
    evaluation: dict[str, Any] | None = None


def _kept_number(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    return {NUMBER_KEY: meta[NUMBER_KEY]} if meta and NUMBER_KEY in meta else {}


def _config_differences(stored: Mapping[str, Any], now: Mapping[str, Any], shown: int = 3) -> str:
    """Where two recorded configs differ, for a refused resume: ``lookahead: stored 1, now 2``."""

    before, after = flatten(stored), flatten(now)
    everything = before.keys() | after.keys()
    keys = sorted(k for k in everything if before.get(k, _MISSING) != after.get(k, _MISSING))

    def shown_value(config: dict[str, Any], key: str) -> str:
        value = config.get(key, _MISSING)
        return "(not set)" if value is _MISSING else repr(value)[:60]

    parts = [f"{k}: stored {shown_value(before, k)}, now {shown_value(after, k)}" for k in keys[:shown]]
    more = f"; and {len(keys) - shown} more" if len(keys) > shown else ""
    return "; ".join(parts) + more


_MISSING = object()


def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _campaign_record(row: CampaignRow) -> CampaignRecord:
    return CampaignRecord(
        id=row.id,
        name=row.name,
        profile=row.profile,
        agent=row.agent,
        config=dict(row.config),
        config_hash=row.config_hash,
        created_at=_utc(row.created_at),  # type: ignore[arg-type]
        status=row.status,
        finished_at=_utc(row.finished_at),
    )


def _candidate_record(row: CandidateRow) -> CandidateRecord:
    return CandidateRecord(
        id=row.id,
        campaign_id=row.campaign_id,
        arm=row.arm,
        agent=row.agent,
        parent_id=row.parent_id,
        source=row.source,
        diff=row.diff,
        ast_hash=row.ast_hash,
        scalars=None if row.scalars is None else dict(row.scalars),
        status=row.status,
        reasons=tuple(row.reasons or ()),
        duplicate_of=row.duplicate_of,
        created_at=_utc(row.created_at),  # type: ignore[arg-type]
        score=row.score,
        meta=dict(row.meta or {}),
    )


def _run_record(row: RunRow) -> RunRecord:
    return RunRecord(
        id=row.id,
        campaign_id=row.campaign_id,
        candidate_id=row.candidate_id,
        run_key=row.run_key,
        seed=row.seed,
        stage=row.stage,
        split=row.split,
        status=row.status,
        per_round=None if row.per_round is None else tuple(row.per_round),
        final_metric=row.final_metric,
        runtime_s=row.runtime_s,
        steps=row.steps,
        bytes_up=row.bytes_up,
        bytes_down=row.bytes_down,
        artifacts=None if row.artifacts is None else dict(row.artifacts),
        message=row.message,
        evaluation=None if row.evaluation is None else dict(row.evaluation),
        started_at=_utc(row.started_at),  # type: ignore[arg-type]
        finished_at=_utc(row.finished_at),
    )


# --- value hygiene ----------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: non-finite floats become None (PostgreSQL's JSON rejects NaN)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the config's canonical JSON (sorted keys): equal configs hash equal."""
    text = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


# --- where a ledger lives ---------------------------------------------------------------------------

_STORAGE_FIX = (
    "give a SQLAlchemy URL such as sqlite:///path/to/ledger.db or postgresql+psycopg://user@host/dbname "
    "(PostgreSQL needs: pip install -e '.[postgres]')"
)


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def check_storage_url(url: str, *, where: str = "campaign.storage=") -> str:
    """``url`` checked before anything is created: a SQLAlchemy URL whose driver is installed and whose
    server answers (a SQLite file: its folder exists; the file itself is not made here). Returns the URL
    (a SQLite path made absolute); a ``ConfigError`` saying what is wrong and how to fix it otherwise."""
    shown = _shown(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{url!r} is not a database URL", where=where, fix=_STORAGE_FIX) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:") or str(parsed.database).startswith("file:"):
            raise ConfigError(
                f"{shown} is not a SQLite file: a campaign's records must outlive the process",
                where=where,
                fix=_STORAGE_FIX,
            )
        path = Path(parsed.database).expanduser().resolve()  # type: ignore[arg-type]
        if not path.parent.is_dir():
            raise ConfigError(
                f"the folder of the SQLite file {path} does not exist", where=where, fix="create it first"
            )
        return parsed.set(database=str(path)).render_as_string(hide_password=False)
    try:
        # A short connect timeout where the driver knows one: an unreachable host must not hang the start.
        args = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
        engine = create_engine(parsed, connect_args=args)
    except NoSuchModuleError:
        driver = parsed.drivername
        raise ConfigError(
            f"unknown database driver {driver!r} in {shown}", where=where, fix=_STORAGE_FIX
        ) from None
    except ImportError as exc:  # the dialect is known, its DB-API module is not installed
        module = exc.name or str(exc)
        fix = (
            "pip install -e '.[postgres]' (psycopg 3)"
            if parsed.get_backend_name() == "postgresql"
            else f"install the Python package that provides {module}"
        )
        raise ConfigError(
            f"the database driver for {shown} is not installed (no module {module!r})", where=where, fix=fix
        ) from None
    try:
        with engine.connect():
            pass
    except DatabaseError as exc:
        reason = " ".join(str(exc.orig or exc).split())[:300]
        raise ConfigError(
            f"cannot connect to {shown}: {reason}",
            where=where,
            fix="check the host, port, user, password and database name, and that the server is running",
        ) from None
    finally:
        engine.dispose()
    return url


def open_ledger(source: str | os.PathLike[str], *, where: str = "the ledger") -> Ledger:
    """The ledger at ``source``: a database URL (checked with :func:`check_storage_url`), or a campaign
    directory that holds ``ledger.db`` (never created here: a wrong path is a ``LedgerError``)."""
    if is_database_url(source):
        return Ledger(check_storage_url(str(source), where=where), create=False)
    directory = Path(source).expanduser()
    if not (directory / LEDGER_FILE).is_file():
        raise LedgerError(
            f"no {LEDGER_FILE} in {source}",
            where=where,
            fix="give the directory of a campaign, or the database URL of its campaign.storage= "
            "(with --campaign NAME)",
        )
    return Ledger.for_campaign_dir(directory)


def find_campaign(ledger: Ledger, name: str | None) -> CampaignRecord:
    """The campaign called ``name`` in ``ledger``; without a name, the only one (or, in a campaign
    directory's own ledger, the first: earlier AFR kept one campaign per directory)."""
    campaigns = ledger.campaigns()
    names = ", ".join(repr(c.name) for c in campaigns[:20]) + (" ..." if len(campaigns) > 20 else "")
    if name is not None:
        found = next((c for c in campaigns if c.name == name), None)
        if found is None:
            raise LedgerError(
                f"no campaign named {name!r}" + (f" (it holds {names})" if campaigns else " (it holds none)"),
                where=repr(ledger),
                fix="give one of the names it holds" if campaigns else "give the database a campaign ran in",
            )
        return found
    if not campaigns:
        raise LedgerError(
            "the ledger holds no campaign", where=repr(ledger), fix="give a campaign that started"
        )
    if len(campaigns) > 1 and not ledger.is_sqlite_file:
        raise LedgerError(
            f"the database holds {len(campaigns)} campaigns ({names})",
            where=repr(ledger),
            fix="name one with --campaign NAME",
        )
    return campaigns[0]


# --- the ledger -----------------------------------------------------------------------------------


class Ledger:
    """The SQL record of a campaign: campaigns, candidates, runs, costs and budget charges.

    ``url`` is any SQLAlchemy URL; SQLite files get WAL mode and a busy timeout so that several
    threads and processes can share one file. A database without any ledger table gets them all (prefixed
    ``afr_``) and the schema version; an existing ledger is checked instead and never altered (but for the
    tables an older schema version lacks, added empty: ``ADDED_TABLES``): a missing
    table or column, another schema version or a damaged file is a ``LedgerError`` saying so.
    Every method is one short transaction on its own session and returns plain frozen snapshots.
    A ledger may be shared by threads, and survives ``fork`` (the child opens its own connections).
    ``create=False`` (readers: the report, the table) refuses a database without a ledger instead of
    creating one in it.
    """

    def __init__(
        self, url: str | URL, *, busy_timeout_s: float = 60.0, echo: bool = False, create: bool = True
    ) -> None:
        parsed = make_url(url)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        if (
            self._sqlite
            and parsed.database not in (None, "", ":memory:")
            and not str(parsed.database).startswith("file:")
        ):
            # Resolve now: a relative path would otherwise follow later changes of the working directory.
            parsed = parsed.set(database=str(Path(parsed.database).expanduser().resolve()))  # type: ignore[arg-type]
        self._url = parsed
        self.engine: Engine = create_engine(parsed, echo=echo)
        if self._sqlite:
            self._install_sqlite_hooks(int(busy_timeout_s * 1000))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._lock_key = parsed.render_as_string(hide_password=False)
        self._where = str(parsed.database) if self._sqlite else parsed.render_as_string(hide_password=True)
        _LEDGERS.add(self)
        self._create = create
        self._open_schema()

    @classmethod
    def for_campaign_dir(cls, path: str | Path, **kwargs: Any) -> Ledger:
        """The ledger of a campaign directory: ``sqlite:///<path>/ledger.db`` (the directory is created)."""
        directory = Path(path).expanduser().resolve()
        directory.mkdir(parents=True, exist_ok=True)
        return cls(URL.create("sqlite", database=str(directory / LEDGER_FILE)), **kwargs)

    @property
    def shown_url(self) -> str:
        """The database URL with any password hidden (``***``), for the console and reports."""
        return self._url.render_as_string(hide_password=True)

    @property
    def is_sqlite_file(self) -> bool:
        """Whether the ledger is a SQLite file (a campaign directory's ``ledger.db``, or another file)."""
        return self._sqlite

    @property
    def url(self) -> str:
        """The database URL, password included (e.g. for Optuna's RDB storage on the same database)."""
        return self._url.render_as_string(hide_password=False)

    def __repr__(self) -> str:
        return f"Ledger({self.shown_url!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sessions ------------------------------------------------------------------------------------

    def _install_sqlite_hooks(self, busy_timeout_ms: int) -> None:
        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _on_begin)
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
                cursor.execute("PRAGMA journal_mode = WAL")
                # In WAL mode NORMAL syncs at checkpoints, not at every commit: a killed process loses
                # nothing and the file is never corrupted; a power cut may undo the last commits, which a
                # resume then re-runs (their runs stay reserved). FULL's fsync per commit cost the parent
                # ~13 % of its time.
                cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA foreign_keys = ON")
            finally:
                cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(conn: Any) -> None:
            write = conn.get_execution_options().get(_WRITE_OPTION, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            # Disk full, a read-only folder: said as such, with its fix (not as a locked database).
            raise storage_error(exc, where=self._where) or LedgerError(
                f"the ledger database failed: {exc.orig or exc}",
                where=repr(self),
                fix="check that the database is reachable and not locked by a stuck process; "
                "SQLite files must be on a local disk (WAL does not work over network file systems)",
            ) from exc

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session in a read transaction (deferred: takes no write lock)."""
        with self._database_errors(), self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def write_session(self, campaign_id: int | None = None) -> Iterator[Session]:
        """A session in a serialised write transaction, committed on exit, rolled back on error.

        See the module docstring: a per-URL thread lock, ``BEGIN IMMEDIATE`` on SQLite, and on server
        databases a ``FOR UPDATE`` lock of the campaign row when ``campaign_id`` is given.
        """
        lock = _lock_for(self._lock_key)
        with lock, self._database_errors(), self._sessions() as session, session.begin():
            session.connection(execution_options={_WRITE_OPTION: True})
            if campaign_id is not None:
                found = session.execute(
                    select(CampaignRow.id).where(CampaignRow.id == campaign_id).with_for_update()
                ).scalar_one_or_none()
                if found is None:
                    raise LedgerError(f"no campaign with id {campaign_id}", where=repr(self))
            yield session

    # -- schema ------------------------------------------------------------------------------------

    _SQLITE_HEADER = b"SQLite format 3\x00"

    def _damaged(self, what: str) -> LedgerError:
        return LedgerError(
            f"the ledger is unusable: {what}",
            where=self._where,
            fix="restore it from a backup, or start afresh with another campaign.dir=... "
            "(AFR changed nothing in it)",
        )

    def _open_schema(self) -> None:
        """Create the tables of a new ledger; check, never alter, those of an existing one."""
        if (
            self._sqlite
            and self._where not in ("", "None", ":memory:")
            and not self._where.startswith("file:")
        ):
            path = Path(self._where)
            size = path.stat().st_size if path.is_file() else 0
            if size:  # 0 bytes is a database SQLite has not written yet: a new ledger
                with open(path, "rb") as fh:
                    header = fh.read(100)
                if not header.startswith(self._SQLITE_HEADER):
                    raise self._damaged("the file is not an SQLite database (garbage or overwritten)")
                if len(header) < 100:
                    raise self._damaged(f"the file is truncated ({size} bytes)")
        try:
            for attempt in range(3):
                try:
                    with self.read_session() as session:
                        state = self._schema_state(session.connection())
                    if state == "ok":
                        return
                    if state == "new" and not self._create:
                        raise LedgerError(
                            "the database holds no AFR ledger (no afr_ tables)",
                            where=self._where,
                            fix="give the database of a campaign (its campaign.storage=)",
                        )
                    with self.write_session() as session:  # again under the write lock: another
                        connection = session.connection()  # process may have created them meanwhile
                        state = self._schema_state(connection)
                        if state == "new":
                            Base.metadata.create_all(connection)
                        if state in ("unversioned", "older"):  # additive upgrade: the added tables
                            for name in _added_since(1):
                                Base.metadata.tables[name].create(connection, checkfirst=True)
                        if state in ("new", "unversioned", "older"):
                            MetaRow.__table__.create(connection, checkfirst=True)
                            session.merge(MetaRow(key="schema_version", value=str(SCHEMA_VERSION)))
                            session.merge(MetaRow(key="created_at", value=utcnow().isoformat()))
                    return
                except (IntegrityError, ProgrammingError):
                    # Two processes creating a fresh server database at once: the loser sees the tables.
                    if attempt == 2:
                        raise
        except DatabaseError as exc:
            raise storage_error(exc, where=self._where) or self._damaged(
                f"the file is damaged or truncated ({exc.orig or exc})"
            ) from None

    def _schema_state(self, connection: Connection) -> str:
        """``new`` (no ledger table), ``unversioned`` (complete, made before versions were recorded),
        ``older`` (an older version's complete schema: it gets the tables added since) or ``ok``; a
        ``LedgerError`` for anything inconsistent."""
        inspector = inspect(connection)
        present = set(inspector.get_table_names())
        ours = set(Base.metadata.tables)
        data = ours - {MetaRow.__tablename__}
        if not present & ours:
            return "new"
        version = None
        if MetaRow.__tablename__ in present:
            version = connection.execute(
                select(MetaRow.value).where(MetaRow.key == "schema_version")
            ).scalar_one_or_none()
        known = int(version) if version is not None and version.isdigit() else None
        older = version is None or (known is not None and known < SCHEMA_VERSION)
        if older:  # the tables added since that version may be missing; they come on open
            data -= set(_added_since(known or 1))
        missing = sorted(data - present)
        if missing:
            raise self._damaged(
                f"table(s) {', '.join(missing)} are missing (it holds {', '.join(sorted(present & ours))}); "
                "recreating them empty would silently lose records"
            )
        for name in sorted(data):
            columns = {c["name"] for c in inspector.get_columns(name)}
            lacking = sorted(set(Base.metadata.tables[name].columns.keys()) - columns)
            if lacking:
                raise self._damaged(
                    f"table {name} lacks column(s) {', '.join(lacking)} (made by another AFR version?)"
                )
        if version is not None and version != str(SCHEMA_VERSION) and not older:
            newer = version.isdigit() and int(version) > SCHEMA_VERSION
            raise LedgerError(
                f"the ledger has schema version {version}; this AFR reads version {SCHEMA_VERSION}",
                where=self._where,
                fix="upgrade AFR (pip install -U afr)"
                if newer
                else "open it with the AFR release that wrote it, or start afresh in another campaign.dir",
            )
        if self._sqlite:
            problem = connection.exec_driver_sql("PRAGMA quick_check(1)").scalar()
            if problem != "ok":
                raise self._damaged(f"SQLite's integrity check failed: {problem}")
        if version is None:
            return "unversioned"
        return "older" if older else "ok"

    def schema_version(self) -> int:
        """The schema version recorded in the ledger."""
        with self.read_session() as session:
            return int(
                session.execute(select(MetaRow.value).where(MetaRow.key == "schema_version")).scalar_one()
            )

    def table_names(self) -> list[str]:
        """The tables present in the database (ours and any others, e.g. Optuna's)."""
        return sorted(inspect(self.engine).get_table_names())

    # -- campaigns -----------------------------------------------------------------------------------

    def start_campaign(self, name: str, profile: str, agent: str, config: dict[str, Any]) -> int:
        """Create the campaign, or return the id of the one with this name and the same config (resume).

        Resuming an ``interrupted`` or ``failed`` campaign marks it ``running`` again; a ``finished`` one is
        left as is.
        Raises ``ConfigError`` if the name is taken by a campaign with a different config.
        """
        stored = _jsonable(config)
        digest = config_hash(config)
        for attempt in range(2):
            try:
                with self.write_session() as session:
                    row = session.scalars(select(CampaignRow).where(CampaignRow.name == name)).one_or_none()
                    if row is None:
                        row = CampaignRow(
                            name=name, profile=profile, agent=agent, config=stored, config_hash=digest
                        )
                        session.add(row)
                        session.flush()
                        return row.id
                    if row.config_hash != digest:
                        differs = _config_differences(row.config or {}, stored)
                        raise ConfigError(
                            f"campaign {name!r} already exists with a different config "
                            f"(stored hash {row.config_hash[:12]}, this config {digest[:12]}"
                            + (f"; {differs}" if differs else "")
                            + ")",
                            where=repr(self),
                            fix="choose a new campaign name, or resume with exactly the same config",
                        )
                    if row.status in ("interrupted", "failed"):
                        row.status, row.finished_at = "running", None
                    return row.id
            except IntegrityError:
                # Another process inserted the same name between our check and insert (server DBs).
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def finish_campaign(self, campaign_id: int, status: str = "finished") -> None:
        """Mark the campaign ``finished``, ``interrupted`` or ``failed`` (or ``running`` again)."""
        _check(status, CAMPAIGN_STATUSES, "campaign status")
        with self.write_session() as session:
            row = self._get(session, CampaignRow, campaign_id, "campaign")
            row.status = status
            row.finished_at = None if status == "running" else utcnow()

    def rename_campaign(
        self, campaign_id: int, new_name: str, *, studies: Mapping[str, str] | None = None
    ) -> CampaignRecord:
        """Give the campaign another name, and rename Optuna's ``studies`` (old -> new name) of the same
        database in the same transaction: a failed campaign in a shared database is archived this way, so
        that its name (and its studies' names) are free for the next attempt. Nothing else changes."""
        if len(new_name.encode("utf-8")) > 255:
            raise LedgerError(f"the name {new_name[:40]!r}… would be over 255 bytes", where=repr(self))
        with self.write_session(campaign_id) as session:
            taken = session.scalars(select(CampaignRow.id).where(CampaignRow.name == new_name)).first()
            if taken is not None:
                raise LedgerError(f"a campaign named {new_name!r} exists already", where=repr(self))
            row = self._get(session, CampaignRow, campaign_id, "campaign")
            row.name = new_name
            connection = session.connection()
            if studies and "studies" in inspect(connection).get_table_names():
                for old, new in studies.items():
                    connection.execute(
                        text("UPDATE studies SET study_name = :new WHERE study_name = :old"),
                        {"new": new, "old": old},
                    )
            session.flush()
            return _campaign_record(row)

    def campaign(self, campaign_id: int) -> CampaignRecord:
        """The campaign with this id."""
        with self.read_session() as session:
            return _campaign_record(self._get(session, CampaignRow, campaign_id, "campaign"))

    def campaigns(self) -> list[CampaignRecord]:
        """Every campaign of the database, oldest first."""
        with self.read_session() as session:
            return [
                _campaign_record(r) for r in session.scalars(select(CampaignRow).order_by(CampaignRow.id))
            ]

    def campaign_by_name(self, name: str) -> CampaignRecord | None:
        """The campaign with this name, or None."""
        with self.read_session() as session:
            row = session.scalars(select(CampaignRow).where(CampaignRow.name == name)).one_or_none()
            return None if row is None else _campaign_record(row)

    # -- candidates ----------------------------------------------------------------------------------

    def add_candidate(
        self,
        campaign_id: int,
        *,
        arm: str,
        agent: str,
        source: str,
        diff: str,
        ast_hash: str,
        parent_id: int | None = None,
        scalars: dict[str, Any] | None = None,
        status: str = "proposed",
        reasons: Iterable[str] = (),
        meta: dict[str, Any] | None = None,
        also_match: Iterable[str] = (),
    ) -> int:
        """Store a candidate and return its id.

        If an earlier, non-duplicate candidate of the campaign has the same ``ast_hash`` (or one of
        ``also_match``: the same file's hash under an older hash version, for ledgers written before it) and
        the same ``scalars``, the new row is stored with status ``duplicate`` and ``duplicate_of`` set (check
        ``candidate(id).status``). Scalars are compared too so that control trials, which all share the
        baseline's source, are duplicates only when they repeat a scalar setting.
        """
        _check(arm, ARMS, "candidate arm")
        _check(status, CANDIDATE_STATUSES, "candidate status")
        scalars_json = None if scalars is None else _jsonable(scalars)
        reason_list = [str(r) for r in reasons]
        with self.write_session(campaign_id) as session:
            earlier = session.execute(
                select(CandidateRow.id, CandidateRow.scalars)
                .where(
                    CandidateRow.campaign_id == campaign_id,
                    CandidateRow.ast_hash.in_({ast_hash, *also_match}),
                    CandidateRow.status != "duplicate",
                )
                .order_by(CandidateRow.id)
            ).all()
            original = next((cid for cid, s in earlier if s == scalars_json), None)
            if original is not None:
                status = "duplicate"
                first = _candidate_record(self._get(session, CandidateRow, original, "candidate"))
                reason_list.append(f"duplicate of candidate {first.name} (same ast_hash and scalars)")
            meta = dict(meta or {})
            meta.pop(NUMBER_KEY, None)  # the ledger's to give, never the caller's
            if number := self._next_number(session, campaign_id, arm):
                meta[NUMBER_KEY] = number
            row = CandidateRow(
                campaign_id=campaign_id,
                arm=arm,
                agent=agent,
                parent_id=parent_id,
                source=source,
                diff=diff,
                ast_hash=ast_hash,
                scalars=scalars_json,
                status=status,
                reasons=reason_list,
                duplicate_of=original,
                meta=_jsonable(meta),
            )
            session.add(row)
            session.flush()
            return row.id

    @staticmethod
    def _next_number(session: Session, campaign_id: int, arm: str) -> int | None:
        """The next candidate's number within ``arm`` (1, 2, ...); None in a campaign begun before those
        numbers existed, whose candidates keep their names from row ids (mixing would clash)."""
        first = session.execute(
            select(CandidateRow.meta)
            .where(CandidateRow.campaign_id == campaign_id)
            .order_by(CandidateRow.id)
            .limit(1)
        ).scalar_one_or_none()
        if first is not None and NUMBER_KEY not in (first or {}):
            return None
        count = session.execute(
            select(func.count())
            .select_from(CandidateRow)
            .where(CandidateRow.campaign_id == campaign_id, CandidateRow.arm == arm)
        ).scalar_one()
        return int(count) + 1

    _CANDIDATE_FIELDS = frozenset(
        {"status", "reasons", "score", "meta", "scalars", "source", "diff", "ast_hash", "parent_id"}
        | {"duplicate_of", "agent"}
    )

    def update_candidate(self, candidate_id: int, **fields: Any) -> CandidateRecord:
        """Set the given fields (status, reasons, score, meta, ...) and return the updated candidate."""
        unknown = set(fields) - self._CANDIDATE_FIELDS
        if unknown:
            raise TypeError(f"update_candidate() cannot set {', '.join(sorted(unknown))}")
        if "status" in fields:
            _check(fields["status"], CANDIDATE_STATUSES, "candidate status")
        with self.write_session() as session:
            row = self._get(session, CandidateRow, candidate_id, "candidate")
            for name, value in fields.items():
                if name == "reasons":
                    value = [str(r) for r in value]
                elif name == "meta":  # the number within the arm is the candidate's identity: it stays
                    value = _jsonable({**dict(value or {}), **_kept_number(row.meta)})
                elif name == "scalars":
                    value = None if value is None else _jsonable(value)
                elif name == "score":
                    value = _finite(value)
                setattr(row, name, value)
            session.flush()
            return _candidate_record(row)

    def candidate(self, candidate_id: int) -> CandidateRecord:
        """The candidate with this id."""
        with self.read_session() as session:
            return _candidate_record(self._get(session, CandidateRow, candidate_id, "candidate"))

    def candidates(
        self,
        campaign_id: int,
        arm: str | None = None,
        status: str | Iterable[str] | None = None,
        *,
        after_id: int | None = None,
    ) -> list[CandidateRecord]:
        """The campaign's candidates in creation order, optionally of one arm and status (or statuses), and
        only those added after candidate ``after_id``."""
        query = select(CandidateRow).where(CandidateRow.campaign_id == campaign_id)
        if after_id is not None:
            query = query.where(CandidateRow.id > after_id)
        if arm is not None:
            query = query.where(CandidateRow.arm == arm)
        statuses = _as_tuple(status)
        if statuses is not None:
            query = query.where(CandidateRow.status.in_(statuses))
        with self.read_session() as session:
            return [_candidate_record(r) for r in session.scalars(query.order_by(CandidateRow.id))]

    def best_candidates(
        self, campaign_id: int, arm: str, k: int, higher_is_better: bool = True
    ) -> list[CandidateRecord]:
        """The ``k`` scored candidates of the arm with the best score (ties: the earlier first)."""
        order = CandidateRow.score.desc() if higher_is_better else CandidateRow.score.asc()
        query = (
            select(CandidateRow)
            .where(
                CandidateRow.campaign_id == campaign_id,
                CandidateRow.arm == arm,
                CandidateRow.score.is_not(None),
            )
            .order_by(order, CandidateRow.id)
            .limit(max(0, k))
        )
        with self.read_session() as session:
            return [_candidate_record(r) for r in session.scalars(query)]

    def recent_failures(self, campaign_id: int, arm: str, k: int) -> list[CandidateRecord]:
        """The arm's ``k`` most recent ``rejected`` or ``failed`` candidates, newest first."""
        query = (
            select(CandidateRow)
            .where(
                CandidateRow.campaign_id == campaign_id,
                CandidateRow.arm == arm,
                CandidateRow.status.in_(FAILED_CANDIDATE_STATUSES),
            )
            .order_by(CandidateRow.id.desc())
            .limit(max(0, k))
        )
        with self.read_session() as session:
            return [_candidate_record(r) for r in session.scalars(query)]

    # -- runs ----------------------------------------------------------------------------------------

    def start_run(
        self,
        campaign_id: int,
        candidate_id: int,
        run_key: str,
        seed: int,
        stage: str,
        split: str,
        *,
        status: str = "running",
    ) -> int:
        """Record a run and return its id; if ``run_key`` is already recorded, return that run's id.

        The existing run must be of the same candidate, seed, stage and split (a ``LedgerError``
        otherwise: two different runs were given the same key).
        """
        _check(stage, RUN_STAGES, "run stage")
        _check(status, RUN_STATUSES, "run status")
        with self.write_session(campaign_id) as session:
            row = session.scalars(
                select(RunRow).where(RunRow.campaign_id == campaign_id, RunRow.run_key == run_key)
            ).one_or_none()
            if row is not None:
                if (row.candidate_id, row.seed, row.stage, row.split) != (candidate_id, seed, stage, split):
                    raise LedgerError(
                        f"run key {run_key!r} already names run {row.id} (candidate {row.candidate_id}, "
                        f"seed {row.seed}, {row.stage}/{row.split}), not candidate {candidate_id}, "
                        f"seed {seed}, {stage}/{split}",
                        where=repr(self),
                        fix="build run keys from the candidate id, stage and seed so that they are unique",
                    )
                return row.id
            row = RunRow(
                campaign_id=campaign_id,
                candidate_id=candidate_id,
                run_key=run_key,
                seed=seed,
                stage=stage,
                split=split,
                status=status,
            )
            session.add(row)
            session.flush()
            return row.id

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        per_round: list[dict[str, Any]] | None = None,
        final_metric: float | None = None,
        runtime_s: float | None = None,
        steps: int | None = None,
        bytes_up: int | None = None,
        bytes_down: int | None = None,
        artifacts: dict[str, str] | None = None,
        message: str | None = None,
    ) -> RunRecord:
        """Record the run's outcome (ok/failed/timeout/crashed); fields left None are not changed.

        Non-finite metrics are stored as None (JSON and some databases cannot hold NaN).
        """
        _check(status, RUN_END_STATUSES, "finished run status")
        with self.write_session() as session:
            row = self._get(session, RunRow, run_id, "run")
            row.status = status
            row.finished_at = utcnow()
            if per_round is not None:
                row.per_round = _jsonable(list(per_round))
            if final_metric is not None:
                row.final_metric = _finite(final_metric)
            if runtime_s is not None:
                row.runtime_s = _finite(runtime_s)
            if steps is not None:
                row.steps = int(steps)
            if bytes_up is not None:
                row.bytes_up = int(bytes_up)
            if bytes_down is not None:
                row.bytes_down = int(bytes_down)
            if artifacts is not None:
                row.artifacts = {str(k): str(v) for k, v in artifacts.items()}
            if message is not None:
                row.message = message
            session.flush()
            return _run_record(row)

    def record_evaluation(self, run_id: int, part: str, evaluation: dict[str, Any]) -> RunRecord:
        """Store the parent process's evaluation of a run's weights on one data part (``test``,
        ``heldout``): the run's ``evaluation`` maps each part evaluated to its numbers."""
        with self.write_session() as session:
            row = self._get(session, RunRow, run_id, "run")
            row.evaluation = {**(row.evaluation or {}), part: _jsonable(dict(evaluation))}
            session.flush()
            return _run_record(row)

    def run(self, run_id: int) -> RunRecord:
        """The run with this id."""
        with self.read_session() as session:
            return _run_record(self._get(session, RunRow, run_id, "run"))

    def run_by_key(self, campaign_id: int, run_key: str) -> RunRecord | None:
        """The campaign's run with this key, or None."""
        with self.read_session() as session:
            row = session.scalars(
                select(RunRow).where(RunRow.campaign_id == campaign_id, RunRow.run_key == run_key)
            ).one_or_none()
            return None if row is None else _run_record(row)

    def runs(
        self,
        campaign_id: int,
        stage: str | None = None,
        candidate_id: int | None = None,
        status: str | Iterable[str] | None = None,
    ) -> list[RunRecord]:
        """The campaign's runs in creation order, optionally filtered."""
        query = select(RunRow).where(RunRow.campaign_id == campaign_id)
        if stage is not None:
            query = query.where(RunRow.stage == stage)
        if candidate_id is not None:
            query = query.where(RunRow.candidate_id == candidate_id)
        statuses = _as_tuple(status)
        if statuses is not None:
            query = query.where(RunRow.status.in_(statuses))
        with self.read_session() as session:
            return [_run_record(r) for r in session.scalars(query.order_by(RunRow.id))]

    # -- costs ---------------------------------------------------------------------------------------

    def add_cost(
        self,
        campaign_id: int,
        *,
        arm: str,
        kind: str,
        model: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        money_usd: float = 0.0,
        candidate_id: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Record one cost entry (an LLM call, or compute) and return its id."""
        _check(arm, ACCOUNTS, "cost account")
        _check(kind, COST_KINDS, "cost kind")
        with self.write_session() as session:
            row = CostRow(
                campaign_id=campaign_id,
                candidate_id=candidate_id,
                arm=arm,
                kind=kind,
                model=model,
                prompt_tokens=int(prompt_tokens),
                completion_tokens=int(completion_tokens),
                money_usd=_finite(money_usd) or 0.0,
                meta=_jsonable(meta or {}),
            )
            session.add(row)
            session.flush()
            return row.id

    def add_llm_call(
        self,
        campaign_id: int,
        *,
        arm: str,
        agent: str = "",
        model: str | None = None,
        purpose: str = "",
        step: int | None = None,
        request: Any = None,
        reply: str = "",
        finish_reason: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        latency_s: float = 0.0,
        attempts: int = 1,
        error: str = "",
        started_at: datetime | None = None,
        finished_at: datetime | None = None,
        cost_id: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Record one model call (request, reply, tokens, latency, timestamps, purpose); its id."""
        _check(arm, ACCOUNTS, "call account")
        now = utcnow()
        with self.write_session() as session:
            row = LlmCallRow(
                campaign_id=campaign_id,
                cost_id=cost_id,
                arm=arm,
                agent=agent,
                model=model,
                purpose=purpose,
                step=step,
                request=_jsonable(request if request is not None else {}),
                reply=reply,
                finish_reason=finish_reason,
                prompt_tokens=int(prompt_tokens),
                completion_tokens=int(completion_tokens),
                latency_s=_finite(latency_s) or 0.0,
                attempts=int(attempts),
                error=error,
                started_at=started_at or now,
                finished_at=finished_at or now,
                meta=_jsonable(meta or {}),
            )
            session.add(row)
            session.flush()
            return row.id

    def llm_calls(self, campaign_id: int, arm: str | None = None) -> list[dict[str, Any]]:
        """Every recorded model call of the campaign (of ``arm`` if given), oldest first, as dicts."""
        query = select(LlmCallRow).where(LlmCallRow.campaign_id == campaign_id)
        if arm is not None:
            query = query.where(LlmCallRow.arm == arm)
        with self.read_session() as session:
            rows = session.scalars(query.order_by(LlmCallRow.id)).all()
            return [
                {
                    **{c.name: getattr(row, c.name) for c in LlmCallRow.__table__.columns},
                    "started_at": _utc(row.started_at),
                    "finished_at": _utc(row.finished_at),
                }
                for row in rows
            ]

    # -- workers of a shared campaign ----------------------------------------------------------------

    def join_worker(self, campaign_id: int, name: str) -> None:
        """Register (or re-register) the worker ``name`` of a shared campaign, alive as of now."""
        with self.write_session(campaign_id) as session:
            row = session.scalars(
                select(WorkerRow).where(WorkerRow.campaign_id == campaign_id, WorkerRow.name == name)
            ).one_or_none()
            if row is None:
                session.add(WorkerRow(campaign_id=campaign_id, name=name))
            else:
                row.heartbeat_at, row.status = utcnow(), "active"

    def heartbeat(self, campaign_id: int, name: str, status: str = "active") -> None:
        """The worker is alive (``status`` ``left``: it ended, holding nothing).

        One UPDATE of the worker's own row, outside :meth:`write_session`: neither this process's write lock
        nor the campaign row's lock, which the arms' writes hold in turn. Queued behind them, a beat could
        come later than ``stale_after_s`` while the worker is busy writing — and the others would take its
        runs over and reap its budget slot under it (seen on a loaded machine)."""
        query = (
            update(WorkerRow)
            .where(WorkerRow.campaign_id == campaign_id, WorkerRow.name == name)
            .values(heartbeat_at=utcnow(), status=status)
        )
        with self._database_errors(), self._sessions() as session, session.begin():
            # SQLite: BEGIN IMMEDIATE, so a busy database is waited for (busy timeout), never a failed upgrade
            session.connection(execution_options={_WRITE_OPTION: True})
            session.execute(query)

    def live_workers(self, campaign_id: int, stale_after_s: float) -> set[str]:
        """Workers whose last heartbeat is at most ``stale_after_s`` old and that have not left."""
        with self.read_session() as session:
            rows = session.scalars(select(WorkerRow).where(WorkerRow.campaign_id == campaign_id)).all()
            beats = [(r.name, _utc(r.heartbeat_at), r.status) for r in rows]
        now = utcnow()
        return {
            name
            for name, beat, status in beats
            if status == "active" and beat is not None and (now - beat).total_seconds() <= stale_after_s
        }

    def claim_candidate(
        self,
        candidate_id: int,
        worker: str,
        *,
        statuses: Iterable[str],
        live: set[str],
        meta: Mapping[str, Any] | None = None,
    ) -> CandidateRecord | None:
        """Mark the candidate ``running`` as ``worker``'s, in one write, if its status is one of
        ``statuses`` and it is not held by another worker in ``live``; None if it is not this worker's to
        take (another claimed it first). ``meta`` entries are set in the same write."""
        with self.write_session() as session:
            row = self._get(session, CandidateRow, candidate_id, "candidate")
            holder = (row.meta or {}).get(WORKER_KEY)
            if row.status not in set(statuses) or (holder not in (None, worker) and holder in live):
                return None
            row.meta = _jsonable({**dict(row.meta or {}), **dict(meta or {}), WORKER_KEY: worker})
            row.status = "running"
            session.flush()
            return _candidate_record(row)

    def add_note(self, campaign_id: int, *, arm: str, kind: str, text: str) -> int:
        """Record something the report tells about an arm (``kind="stopped"``: why it stopped early)."""
        _check(arm, ACCOUNTS, "note account")
        with self.write_session() as session:
            row = NoteRow(campaign_id=campaign_id, arm=arm, kind=kind, text=text)
            session.add(row)
            session.flush()
            return row.id

    def notes(self, campaign_id: int, kind: str | None = None) -> list[tuple[str, str, str]]:
        """``(arm, kind, text)`` of the campaign's notes (of ``kind`` if given), oldest first."""
        query = select(NoteRow).where(NoteRow.campaign_id == campaign_id)
        if kind is not None:
            query = query.where(NoteRow.kind == kind)
        with self.read_session() as session:
            return [(r.arm, r.kind, r.text) for r in session.scalars(query.order_by(NoteRow.id))]

    def cost_totals(self, campaign_id: int) -> dict[str, dict[str, Any]]:
        """Per arm: ``entries``, ``llm_calls``, ``prompt_tokens``, ``completion_tokens``, ``money_usd``."""
        query = (
            select(
                CostRow.arm,
                CostRow.kind,
                func.count(CostRow.id),
                func.coalesce(func.sum(CostRow.prompt_tokens), 0),
                func.coalesce(func.sum(CostRow.completion_tokens), 0),
                func.coalesce(func.sum(CostRow.money_usd), 0.0),
            )
            .where(CostRow.campaign_id == campaign_id)
            .group_by(CostRow.arm, CostRow.kind)
        )
        totals: dict[str, dict[str, Any]] = {}
        with self.read_session() as session:
            for arm, kind, count, prompt, completion, money in session.execute(query):
                t = totals.setdefault(arm, dict.fromkeys(_COST_TOTAL_KEYS, 0))
                t["entries"] += int(count)
                t["llm_calls"] += int(count) if kind == "llm" else 0
                t["prompt_tokens"] += int(prompt)
                t["completion_tokens"] += int(completion)
                t["money_usd"] = float(t["money_usd"]) + float(money)
        return totals

    # -- helpers -------------------------------------------------------------------------------------

    def _get(self, session: Session, model: type[Any], row_id: int, what: str) -> Any:
        row = session.get(model, row_id)
        if row is None:
            raise LedgerError(f"no {what} with id {row_id}", where=repr(self))
        return row
