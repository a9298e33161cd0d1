"""The Optuna control arm, and the agent arm's mirror study for ``optuna-dashboard``.

:class:`OptunaControl` keeps an Optuna study in an SQL storage (normally the campaign's ledger database:
Optuna's tables have no ``afr_`` prefix, so both live in one file) and drives it with the ask-and-tell
interface. The search space is exactly the baseline's declared scalars with the profile's ranges; with
``enqueue_defaults`` the first trial of a new study is the baseline's default values, so trial 0 is the
baseline itself.

:func:`record_agent_candidate` adds each scored agent candidate to a second study in the same storage, so
``optuna-dashboard <storage-url>`` shows both arms side by side.

Determinism and resume
----------------------
TPE's random state lives in the process, so a sampler seeded once would restart its random stream after a
crash and repeat earlier proposals. Instead, before every ask the sampler is re-created with a seed derived
from ``(seed, number of trials stored)``. TPE is otherwise a pure function of the stored trials, so:

* reproducible: with the same seed and the same sequence of tells, the asked values are identical, in one
  process or across any number of crashes and resumes (the continued sequence depends only on the seed and
  what the storage holds);
* reproducible: a trial asked but never told survives a crash with its values (:meth:`pending`), and the
  campaign re-runs exactly those values;
* not reproducible: if a resumed pending trial scores differently the second time (a non-deterministic run,
  a timeout), later proposals differ from the uninterrupted campaign's; a crash in the middle of an ask
  (between creating the trial and storing all its values) leaves a half-asked trial, which the next
  control on that study marks failed, so the history (and what follows) differs from an uninterrupted
  run; and different Optuna/NumPy versions may sample differently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from ..errors import ConfigError
from ._base import ControlTrial, ScalarControl
from ._storage import SoleWriterStorage

if TYPE_CHECKING:
    from ..recipe import Scalar

__all__ = [
    "OptunaControl",
    "AgentStudyRecorder",
    "record_agent_candidate",
    "open_storage",
    "close_storages",
    "quiet_optuna",
    "SAMPLERS",
    "DIFF_CHARS",
]

SAMPLERS = ("tpe", "random")
CANDIDATE_ATTR = "candidate"
"""User attr of every trial of both studies: the candidate's name (``agent#30``), as on the console."""
DIFF_CHARS = 8000  # an agent candidate's diff is cut to this many characters in the dashboard study
MESSAGE_CHARS = 2000
_SPACE_ATTR = "afr_space"
WORKER_ATTR = "afr_worker"
"""User attr of a shared campaign's control trial: the worker that asked it."""
_ARM_ATTR = "afr_arm"


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; AFR keeps its own record, so show warnings only."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


quiet_optuna()


# --- storages ---------------------------------------------------------------------------------------

_STORAGES: dict[str, RDBStorage] = {}
_STORAGES_GUARD = threading.Lock()
_STUDY_LOCKS: dict[tuple[str, str], threading.Lock] = {}


def open_storage(url: str, *, busy_timeout_s: float = 60.0) -> RDBStorage:
    """The Optuna RDB storage on ``url``, one per URL and process (engines are shared by all studies).

    SQLite files get a busy timeout, so Optuna's writes wait for the ledger's (and vice versa) instead of
    failing with "database is locked".
    """
    with _STORAGES_GUARD:
        storage = _STORAGES.get(url)
        if storage is None:
            kwargs: dict[str, Any] = {}
            if make_url(url).get_backend_name() == "sqlite":
                kwargs["connect_args"] = {"timeout": busy_timeout_s}
            storage = _STORAGES[url] = RDBStorage(url, engine_kwargs=kwargs)
        return storage


def close_storages() -> None:
    """Dispose of every cached storage's connections (they reopen on next use)."""
    with _STORAGES_GUARD:
        for storage in _STORAGES.values():
            storage.engine.dispose()
        _STORAGES.clear()


def _study_lock(url: str, study_name: str) -> threading.Lock:
    with _STORAGES_GUARD:
        return _STUDY_LOCKS.setdefault((url, study_name), threading.Lock())


def _after_fork_in_child() -> None:
    # Like the ledger: a forked child must not reuse the parent's pooled connections or a held lock.
    global _STORAGES_GUARD
    _STORAGES_GUARD = threading.Lock()
    _STUDY_LOCKS.clear()
    for storage in _STORAGES.values():
        storage.engine.dispose(close=False)
    _STORAGES.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _direction(higher_is_better: bool) -> str:
    return "maximize" if higher_is_better else "minimize"


def _open_study(
    storage: BaseStorage, study_name: str, higher_is_better: bool, sampler: optuna.samplers.BaseSampler | None
) -> optuna.Study:
    direction = _direction(higher_is_better)
    study = optuna.create_study(
        storage=storage, study_name=study_name, direction=direction, sampler=sampler, load_if_exists=True
    )
    stored = study.direction.name.lower()
    if stored != direction:
        raise ConfigError(
            f"Optuna study {study_name!r} exists with direction {stored}, but this campaign's metric "
            f"wants {direction}",
            where=getattr(storage, "url", ""),
            fix="use a new campaign name (each campaign has its own studies)",
        )
    return study


def _finite(score: float | None) -> float | None:
    if score is None or isinstance(score, bool):
        return None
    try:
        value = float(score)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --- the control arm ------------------------------------------------------------------------------


def _distribution(scalar: Scalar) -> BaseDistribution:
    if scalar.integer:
        return IntDistribution(math.ceil(scalar.low), math.floor(scalar.high), log=scalar.log)
    return FloatDistribution(float(scalar.low), float(scalar.high), log=scalar.log)


def _space_record(space: Mapping[str, Scalar]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "default": float(s.default),
            "low": float(s.low),
            "high": float(s.high),
            "log": bool(s.log),
            "integer": bool(s.integer),
        }
        for name, s in space.items()
    }


class OptunaControl(ScalarControl):
    """Optuna (TPE by default) over the baseline's declared scalars, in an SQL storage, by ask and tell.

    ``load_if_exists``: a resumed campaign continues the same study; :meth:`pending` gives back the trials
    it asked before the crash. Not thread-safe across processes on one study (a campaign has one control);
    calls from several threads of one process are serialised.
    """

    def __init__(
        self,
        storage_url: str,
        study_name: str,
        space: Mapping[str, Scalar],
        *,
        seed: int,
        higher_is_better: bool,
        n_startup_trials: int = 8,
        enqueue_defaults: bool = True,
        sampler: str = "tpe",
        worker: str | None = None,
        parallel: bool = False,
        sole_writer: bool = False,
    ) -> None:
        """``worker``: this process's name in a shared campaign, where several processes ask trials of one
        study at once: TPE then treats their running trials as constant lies (so concurrent asks differ),
        each worker's sampler seed includes its name, and every trial records the worker that asked it.
        ``parallel``: this process asks a trial while its previous one still runs (``campaign.lookahead``):
        TPE treats the running trials as constant lies too. ``sole_writer``: no other process writes the
        study while this object lives (a campaign that is not shared), so its trials are read from memory
        (:class:`~afr.controls._storage.SoleWriterStorage`); every write goes to the database at once."""
        super().__init__(space, higher_is_better=higher_is_better)
        if not self.space:
            raise ConfigError("the control arm needs at least one declared scalar", where="space")
        if sampler not in SAMPLERS:
            raise ConfigError(
                f"unknown control sampler {sampler!r}", where="control.sampler", fix=f"one of {SAMPLERS}"
            )
        if (
            isinstance(n_startup_trials, bool)
            or not isinstance(n_startup_trials, int)
            or n_startup_trials < 0
        ):
            raise ConfigError(
                f"n_startup_trials must be a non-negative integer, got {n_startup_trials!r}",
                where="control.n_startup_trials",
            )
        for name, s in self.space.items():
            if not s.low <= s.default <= s.high:
                raise ConfigError(
                    f"the default of scalar {name!r} ({s.default}) is outside its range [{s.low}, {s.high}]",
                    where="the profile's search_space / recipes.fedavg",
                    fix="give low <= default <= high",
                )
        self.storage_url = storage_url
        self.study_name = study_name
        self.seed = int(seed)
        self.n_startup_trials = n_startup_trials
        self.sampler_name = sampler
        self.enqueue_defaults = bool(enqueue_defaults)
        self.worker = worker
        self.parallel = bool(parallel) or worker is not None
        self._distributions = {name: _distribution(s) for name, s in self.space.items()}
        self._lock = _study_lock(storage_url, study_name)
        if sole_writer and worker is not None:
            raise ValueError("a worker of a shared campaign is never the study's sole writer")
        rdb = open_storage(storage_url)
        self._storage: BaseStorage = SoleWriterStorage(rdb) if sole_writer else rdb
        self._study_id: int | None = None  # read once, when first needed
        with self._lock:
            self._study = _open_study(self._storage, study_name, self.higher_is_better, self._sampler(0))
            self._check_space()
            if worker is None:  # shared: a trial half-asked now may be another live worker's ask
                self._abandon_half_asked()
            if self.enqueue_defaults and not self._study.get_trials(deepcopy=False):
                self._study.enqueue_trial(
                    self.defaults(), user_attrs={"afr_baseline_defaults": True}, skip_if_exists=True
                )

    # -- set-up --------------------------------------------------------------------------------------

    def defaults(self) -> dict[str, float]:
        """The baseline's default values (trial 0 when ``enqueue_defaults``)."""
        return {
            name: int(round(s.default)) if s.integer else float(s.default) for name, s in self.space.items()
        }

    def _sampler(self, n_stored: int) -> optuna.samplers.BaseSampler:
        # A fresh sampler per ask, seeded from (seed, trials stored): see the module docstring.
        salt = f":{self.worker}" if self.worker is not None else ""
        digest = hashlib.sha256(f"afr-control:{self.seed}:{n_stored}{salt}".encode()).hexdigest()
        seed = int(digest[:8], 16)
        if self.sampler_name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=self.n_startup_trials, constant_liar=self.parallel
        )

    def _check_space(self) -> None:
        record = _space_record(self.space)
        attrs = self._study.user_attrs
        stored = attrs.get(_SPACE_ATTR)
        if stored is None:
            self._study.set_user_attr(_SPACE_ATTR, record)
            self._study.set_user_attr(_ARM_ATTR, "control")
        elif json.dumps(stored, sort_keys=True) != json.dumps(record, sort_keys=True):
            raise ConfigError(
                f"Optuna study {self.study_name!r} was created with another scalar space: "
                f"stored {stored}, now {record}",
                where=self.storage_url,
                fix="resume with the same profile ranges and defaults, or start a new campaign name",
            )

    def _abandon_half_asked(self) -> None:
        """A crash inside :meth:`ask` can leave a running trial without all its values: it was never
        handed out, so mark it failed (it is not pending)."""
        for frozen in self._study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if set(frozen.params) != set(self.space):
                self._set_message(frozen, "interrupted while being asked")
                self._study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)

    # -- ask and tell ------------------------------------------------------------------------------

    def ask(self) -> ControlTrial:
        with self._lock:
            self._study.sampler = self._sampler(len(self._study.get_trials(deepcopy=False)))
            trial = self._study.ask(dict(self._distributions))
            if self.worker is not None:
                trial.set_user_attr(WORKER_ATTR, self.worker)
            return ControlTrial(trial.number, self._scalars(trial.params), meta={"worker": self.worker})

    def tell(self, number: int, score: float | None, *, message: str = "", candidate: str = "") -> None:
        """Report trial ``number``'s score; ``None`` or a non-finite score is stored as FAIL. ``candidate``
        (the campaign's name for it, ``control#12``) is the trial's user attr ``candidate``.

        Idempotent: telling a trial that is already finished (e.g. again after a resume) changes nothing.
        """
        with self._lock:
            frozen = self._find(number)
            if candidate and frozen.user_attrs.get(CANDIDATE_ATTR) != candidate:
                self._set_attr(frozen, CANDIDATE_ATTR, candidate)
            if frozen.state.is_finished():
                return
            if frozen.state != TrialState.RUNNING:
                raise ValueError(f"control trial {number} was never asked (state {frozen.state.name})")
            value = _finite(score)
            if value is None and score is not None:
                message = f"non-finite score {score!r}" + (f"; {message}" if message else "")
            if message:
                self._set_message(frozen, message)
            if value is None:
                self._study.tell(number, state=TrialState.FAIL)
            else:
                self._study.tell(number, value)

    def annotate(self, number: int, key: str, value: Any) -> None:
        """The study's user attr ``<key>/<number>``: Optuna keeps a finished trial's own attrs fixed, and the
        trial's value (what the sampler learns from) stays as told."""
        with self._lock:
            self._find(number)  # an unknown trial fails here
            self._study.set_user_attr(f"{key}/{number}", value)

    def trials(self) -> list[ControlTrial]:
        with self._lock:
            frozen = self._study.get_trials(deepcopy=False)
        out = [self._snapshot(t) for t in frozen if t.state != TrialState.WAITING]
        return sorted(out, key=lambda t: t.number)

    # -- helpers -----------------------------------------------------------------------------------

    @property
    def study(self) -> optuna.Study:
        """The underlying Optuna study (read it; ask and tell through this object)."""
        return self._study

    def _find(self, number: int) -> FrozenTrial:
        for frozen in self._study.get_trials(deepcopy=False):
            if frozen.number == number:
                return frozen
        raise ValueError(f"the control study {self.study_name!r} has no trial {number}")

    def _set_message(self, frozen: FrozenTrial, message: str) -> None:
        self._set_attr(frozen, "message", str(message)[:MESSAGE_CHARS])

    def _set_attr(self, frozen: FrozenTrial, key: str, value: Any) -> None:
        # through the storage: a finished trial's user attrs cannot be set through the study
        if self._study_id is None:
            self._study_id = self._storage.get_study_id_from_name(self.study_name)
        trial_id = self._storage.get_trial_id_from_study_id_trial_number(self._study_id, frozen.number)
        self._storage.set_trial_user_attr(trial_id, key, value)

    def _scalars(self, params: Mapping[str, Any]) -> dict[str, float]:
        return {
            name: int(params[name]) if self.space[name].integer else float(params[name])
            for name in self.space
            if name in params
        }

    def _snapshot(self, frozen: FrozenTrial) -> ControlTrial:
        if frozen.state == TrialState.RUNNING:
            state, score = "pending", None
        elif frozen.state == TrialState.COMPLETE:
            state, score = "ok", frozen.value
        else:
            state, score = "failed", None
        return ControlTrial(
            number=frozen.number,
            scalars=self._scalars(frozen.params),
            state=state,  # type: ignore[arg-type]
            score=score,
            message=str(frozen.user_attrs.get("message", "")),
            meta={
                "baseline_defaults": bool(frozen.user_attrs.get("afr_baseline_defaults", False)),
                "worker": frozen.user_attrs.get(WORKER_ATTR),
            },
        )

    def __repr__(self) -> str:
        return f"OptunaControl({self.study_name!r}, {self.sampler_name}, seed={self.seed})"


# --- the agent arm's mirror study -------------------------------------------------------------------


class AgentStudyRecorder:
    """Records scored agent candidates as trials (no params) of a second study in the control's storage.

    Each trial carries ``user_attrs`` ``candidate_id``, ``candidate`` (the campaign's name for it,
    ``agent#30``), ``diff`` (cut to :data:`DIFF_CHARS`) and ``note``;
    a failed candidate (score None or non-finite) is a FAIL trial. Idempotent per ``candidate_id``.
    """

    def __init__(
        self, storage_url: str, study_name: str, *, higher_is_better: bool = True, exclusive: bool = False
    ) -> None:
        """``exclusive``: this object is the study's only writer while it lives (a campaign that is not
        shared): it remembers what it recorded instead of reading the study before each record."""
        self.storage_url, self.study_name = storage_url, study_name
        self._lock = _study_lock(storage_url, study_name)
        self._recorded: dict[int | str, int] | None = None
        self._next_number = 0
        with self._lock:
            self._study = _open_study(open_storage(storage_url), study_name, higher_is_better, None)
            if self._study.user_attrs.get(_ARM_ATTR) is None:
                self._study.set_user_attr(_ARM_ATTR, "agent")
            if exclusive:
                trials = self._study.get_trials(deepcopy=False)
                self._recorded = {
                    t.user_attrs["candidate_id"]: t.number
                    for t in reversed(trials)
                    if "candidate_id" in t.user_attrs
                }
                # Optuna numbers a study's trials 0, 1, ... in the order they are added: alone on the
                # study, the next one's number is known without reading the study back.
                self._next_number = len(trials)

    @property
    def study(self) -> optuna.Study:
        return self._study

    def find(self, candidate_id: int | str) -> FrozenTrial | None:
        """The trial recorded for this candidate, if any."""
        for frozen in self._study.get_trials(deepcopy=False):
            if frozen.user_attrs.get("candidate_id") == candidate_id:
                return frozen
        return None

    def record(
        self, candidate_id: int | str, score: float | None, diff: str = "", note: str = "", name: str = ""
    ) -> int:
        """Add the candidate (once) and return its trial number (``name``: its user attr ``candidate``)."""
        with self._lock:
            if self._recorded is not None:
                if candidate_id in self._recorded:
                    return self._recorded[candidate_id]
            elif (existing := self.find(candidate_id)) is not None:
                return existing.number
            value = _finite(score)
            diff = str(diff or "")
            cut = diff if len(diff) <= DIFF_CHARS else diff[:DIFF_CHARS] + f"\n... ({len(diff)} chars)"
            attrs: dict[str, Any] = {"candidate_id": candidate_id, "diff": cut, "note": str(note or "")}
            if name:
                attrs[CANDIDATE_ATTR] = name
            if value is None and score is not None:
                attrs["message"] = f"non-finite score {score!r}"
            trial = optuna.trial.create_trial(
                state=TrialState.COMPLETE if value is not None else TrialState.FAIL,
                value=value,
                params={},
                distributions={},
                user_attrs=attrs,
            )
            self._study.add_trial(trial)
            if self._recorded is not None:
                self._recorded[candidate_id] = number = self._next_number
                self._next_number += 1
                return number
            found = self.find(candidate_id)
            assert found is not None
            return found.number


def record_agent_candidate(
    storage_url: str,
    study_name: str,
    candidate_id: int | str,
    score: float | None,
    diff: str = "",
    note: str = "",
    *,
    higher_is_better: bool = True,
    name: str = "",
) -> int:
    """Record one agent candidate in the agent's dashboard study (see :class:`AgentStudyRecorder`)."""
    recorder = AgentStudyRecorder(storage_url, study_name, higher_is_better=higher_is_better)
    return recorder.record(candidate_id, score, diff, note, name)
