"""An Optuna storage for a study that one object alone writes: writes go to the database at once, reads of
trials come from memory.

Optuna's own cache over an RDB storage (``optuna.storages._CachedStorage``) keeps only *finished* trials: it
must assume that another process may change a running one, so it reads the running trials back from the
database on every ``get_all_trials`` and ``get_trial``. A TPE ``ask`` makes about ten such reads, so one ask
and tell cost ~65 SQL statements — a quarter of a campaign parent's CPU on heart_disease. When this process is
the study's only writer (a campaign that is not shared), every change to a trial is one this storage made,
so it can keep the running trials too, exactly: each write goes to the database first (a resumed campaign
and ``optuna-dashboard`` see it as before), then updates a copy in memory; state changes are read back
from the database, so the cached trial carries the database's own timestamps.

Written against Optuna's public :class:`~optuna.storages.BaseStorage` (not by subclassing the private
``_CachedStorage``), so an Optuna upgrade cannot change what it caches.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Container, Sequence
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy  # only BaseStorage's signature names it

__all__ = ["SoleWriterStorage"]


class SoleWriterStorage(BaseStorage):
    """``backend`` (an :class:`~optuna.storages.RDBStorage`) for a process that alone writes the trials of
    the studies it opens through this object; study-level calls go straight to the backend.

    Thread-safe within the process. Not for a study that another process writes at the same time (a
    shared campaign): its changes would not be seen."""

    def __init__(self, backend: RDBStorage) -> None:
        self._backend = backend
        self._lock = threading.RLock()
        self._trials: dict[int, list[FrozenTrial]] = {}  # study id -> its trials, index = number
        self._where: dict[int, tuple[int, int]] = {}  # trial id -> (study id, number)
        self._directions: dict[int, list[StudyDirection]] = {}

    @property
    def backend(self) -> RDBStorage:
        return self._backend

    @property
    def url(self) -> str:
        return str(self._backend.url)

    # --- studies: the backend's ------------------------------------------------------------------------

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self._backend.create_new_study(directions, study_name)

    def delete_study(self, study_id: int) -> None:
        with self._lock:
            self._backend.delete_study(study_id)
            for trial in self._trials.pop(study_id, []):
                self._where.pop(trial._trial_id, None)
            self._directions.pop(study_id, None)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._backend.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._backend.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._backend.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._backend.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        with self._lock:  # fixed when the study is created
            if study_id not in self._directions:
                self._directions[study_id] = self._backend.get_study_directions(study_id)
            return list(self._directions[study_id])

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._backend.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._backend.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._backend.get_all_studies()

    # --- trials: written through, read from memory ------------------------------------------------------

    def _study(self, study_id: int) -> list[FrozenTrial]:
        """The study's trials, read from the database the first time only."""
        trials = self._trials.get(study_id)
        if trials is None:
            stored = sorted(self._backend.get_all_trials(study_id, deepcopy=False), key=lambda t: t.number)
            trials = self._trials[study_id] = []
            for trial in stored:
                self._keep(study_id, trial)
        return trials

    def _keep(self, study_id: int, trial: FrozenTrial) -> None:
        trials = self._trials[study_id]
        if trial.number != len(trials):  # a number skipped or repeated: another writer after all
            raise RuntimeError(
                f"trial number {trial.number} of study {study_id} does not follow the {len(trials)} trials "
                "this process knows: another process wrote the study, which SoleWriterStorage cannot see"
            )
        trials.append(trial)
        self._where[trial._trial_id] = (study_id, trial.number)

    def _cached(self, trial_id: int) -> FrozenTrial:
        study_id, number = self._where[trial_id]
        return self._trials[study_id][number]

    def _replace(self, trial_id: int, trial: FrozenTrial) -> None:
        # Copy on write: a trial handed out earlier (``deepcopy=False``) never changes under its holder.
        study_id, number = self._where[trial_id]
        self._trials[study_id][number] = trial

    def _add_entry(self, trial_id: int, field: str, key: Any, value: Any, **also: Any) -> None:
        """Set ``key`` in the mapping ``field`` of a known trial and each ``also`` mapping, copy on write."""
        if not self._known(trial_id):
            return
        old = self._cached(trial_id)
        new = copy.copy(old)
        for name, entry in ((field, value), *also.items()):
            setattr(new, name, {**getattr(old, name), key: entry})
        self._replace(trial_id, new)

    def _known(self, trial_id: int) -> bool:
        # A trial of a study not read through this object yet: written to (and later read from) the
        # database only; the study's first read brings it in.
        return trial_id in self._where

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        with self._lock:
            self._study(study_id)
            create = getattr(self._backend, "_create_new_trial", None)
            if create is not None:  # returns the stored trial: no read back
                trial = create(study_id, template_trial)
            else:
                trial = self._backend.get_trial(self._backend.create_new_trial(study_id, template_trial))
            self._keep(study_id, trial)
            return trial._trial_id

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        with self._lock:
            self._backend.set_trial_param(trial_id, param_name, param_value_internal, distribution)
            value = distribution.to_external_repr(param_value_internal)
            self._add_entry(trial_id, "params", param_name, value, distributions=distribution)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        with self._lock:
            trials = self._study(study_id)
            if 0 <= trial_number < len(trials):
                return trials[trial_number]._trial_id
        return self._backend.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._lock:
            changed = self._backend.set_trial_state_values(trial_id, state, values)
            if self._known(trial_id):
                # Read back: the database set the timestamps (and whether the change happened).
                self._replace(trial_id, self._backend.get_trial(trial_id))
            return changed

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        with self._lock:
            self._backend.set_trial_intermediate_value(trial_id, step, intermediate_value)
            self._add_entry(trial_id, "intermediate_values", step, intermediate_value)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            self._backend.set_trial_user_attr(trial_id, key, value)
            self._add_entry(trial_id, "user_attrs", key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            self._backend.set_trial_system_attr(trial_id, key, value)
            self._add_entry(trial_id, "system_attrs", key, value)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            if self._known(trial_id):
                trial = self._cached(trial_id)
                # Optuna's Trial edits the running trial it reads here in place (``params``,
                # ``distributions`` after each suggest), as it may with the fresh object a database read
                # gives: so a running trial is handed out as a copy of its own.
                return trial if trial.state.is_finished() else _own_copy(trial)
        return self._backend.get_trial(trial_id)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        with self._lock:
            trials = list(self._study(study_id))
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def remove_session(self) -> None:
        self._backend.remove_session()


def _own_copy(trial: FrozenTrial) -> FrozenTrial:
    """A copy whose mappings are its own (the values in them are not edited in place by anyone)."""
    new = copy.copy(trial)
    new.params, new.distributions = dict(trial.params), dict(trial.distributions)
    new.user_attrs, new.system_attrs = dict(trial.user_attrs), dict(trial.system_attrs)
    new.intermediate_values = dict(trial.intermediate_values)
    return new
