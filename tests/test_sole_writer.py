"""SoleWriterStorage: a campaign alone on its control study reads trials from memory, writes them at once.

What must hold: the same asks and tells give the same study as Optuna's own storage (so seeded campaigns
do not change), the database holds every write when it is made (resume and optuna-dashboard), the memory
copy equals a fresh read of the database, trials handed out never change under their holder, and another
writer is detected instead of silently diverging."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState
from sqlalchemy import event

from afr.controls import OptunaControl
from afr.controls._storage import SoleWriterStorage
from afr.ledger import Ledger
from afr.profiles import make_profile
from afr.recipe import FedAvg


@pytest.fixture(scope="module")
def space():
    return make_profile("heart_disease").scalar_space(FedAvg)


def _db(tmp_path, name: str) -> str:
    with Ledger.for_campaign_dir(tmp_path / name) as ledger:
        return ledger.url


def _score(scalars: dict[str, float]) -> float:
    return 1.0 - (math.log10(scalars["lr"]) + 1.7) ** 2 - 0.5 * math.log10(scalars["server_lr"]) ** 2


def _campaign_like(url: str, space, *, sole_writer: bool, n: int = 14) -> list[tuple]:
    """Asks one trial ahead of its tells, as a campaign deciding ahead does; a failure now and then."""
    control = OptunaControl(
        url,
        "c/control",
        space,
        seed=5,
        higher_is_better=True,
        n_startup_trials=4,
        parallel=True,
        sole_writer=sole_writer,
    )
    flight = [control.ask()]
    asked = []
    while len(asked) < n:
        flight.append(control.ask())
        trial = flight.pop(0)
        asked.append((trial.number, tuple(sorted(trial.scalars.items()))))
        score = None if trial.number % 5 == 3 else _score(trial.scalars)
        control.tell(
            trial.number, score, message="broke" if score is None else "", candidate=f"c#{trial.number}"
        )
        control.annotate(trial.number, "test", trial.number * 2)
    return asked


def _stored(url: str) -> list[tuple]:
    study = optuna.load_study(study_name="c/control", storage=url)
    return [
        (t.number, t.state, t.params, t.values, t.user_attrs, t.datetime_start is not None)
        for t in study.get_trials(deepcopy=False)
    ]


def test_same_asks_and_stored_study_as_optunas_own_storage(tmp_path, space):
    plain_url, sole_url = _db(tmp_path, "plain"), _db(tmp_path, "sole")
    assert _campaign_like(sole_url, space, sole_writer=True) == _campaign_like(
        plain_url, space, sole_writer=False
    )
    assert _stored(sole_url) == _stored(plain_url)
    assert any(state == TrialState.FAIL for _, state, *_ in _stored(sole_url))


def test_memory_equals_the_database_and_every_write_is_there_at_once(tmp_path, space):
    url = _db(tmp_path, "s")
    control = OptunaControl(url, "c/control", space, seed=1, higher_is_better=True, sole_writer=True)
    first = control.ask()
    control.tell(first.number, 0.5, candidate="control#1")
    second = control.ask()  # running: Optuna's own cache would read it back from the database each time
    fresh = RDBStorage(url)
    study_id = fresh.get_study_id_from_name("c/control")
    in_db = fresh.get_all_trials(study_id, deepcopy=False)
    in_memory = control.study._storage.get_all_trials(study_id, deepcopy=False)
    assert isinstance(control.study._storage, SoleWriterStorage)
    assert in_memory == in_db  # FrozenTrial equality: every field, timestamps included
    assert [t.state for t in in_db] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert in_db[0].user_attrs["candidate"] == "control#1"
    assert set(in_db[1].params) == set(space) and second.number == 1
    # resumed by another object (a new process would do the same): the pending trial is there
    resumed = OptunaControl(url, "c/control", space, seed=1, higher_is_better=True, sole_writer=True)
    assert [t.number for t in resumed.pending()] == [1]


def test_reads_of_a_running_trial_cost_no_query(tmp_path, space):
    url = _db(tmp_path, "s")
    control = OptunaControl(url, "c/control", space, seed=1, higher_is_better=True, sole_writer=True)
    control.tell(control.ask().number, 0.5)
    control.ask()
    storage = control.study._storage
    study_id = storage.get_study_id_from_name("c/control")
    statements: list[str] = []
    engine = storage.backend.engine
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        trials = storage.get_all_trials(study_id, deepcopy=False)
        storage.get_trial(trials[-1]._trial_id)
        storage.get_trial_id_from_study_id_trial_number(study_id, 1)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert trials[-1].state == TrialState.RUNNING
    assert statements == []


def test_a_trial_handed_out_never_changes_under_its_holder(tmp_path):
    url = _db(tmp_path, "s")
    storage = SoleWriterStorage(RDBStorage(url))
    study = optuna.create_study(storage=storage, study_name="x")
    trial = study.ask()
    held = storage.get_trial(trial._trial_id)
    [listed] = storage.get_all_trials(study._study_id, deepcopy=False)
    trial.suggest_float("a", 0.0, 1.0)
    trial.set_user_attr("k", "v")
    storage.set_trial_intermediate_value(trial._trial_id, 0, 0.25)
    storage.set_trial_system_attr(trial._trial_id, "s", 1)
    for before in (held, listed):
        assert before.params == {} and before.user_attrs == {} and before.intermediate_values == {}
    now = storage.get_trial(trial._trial_id)
    assert now.params["a"] == trial.params["a"] and now.user_attrs == {"k": "v"}
    assert now.intermediate_values == {0: 0.25} and now.system_attrs == {"s": 1}
    assert now.distributions == {"a": FloatDistribution(0.0, 1.0)}
    study.tell(trial, 0.3)
    assert storage.get_trial(trial._trial_id) == RDBStorage(url).get_trial(trial._trial_id)


def test_another_writer_is_detected_not_ignored(tmp_path):
    url = _db(tmp_path, "s")
    storage = SoleWriterStorage(RDBStorage(url))
    study = optuna.create_study(storage=storage, study_name="x")
    study.tell(study.ask(), 1.0)
    optuna.load_study(study_name="x", storage=url).ask()  # another writer adds trial 1
    with pytest.raises(RuntimeError, match="another process wrote the study"):
        study.ask()


def test_a_shared_campaigns_worker_is_never_a_sole_writer(tmp_path, space):
    with pytest.raises(ValueError, match="never the study's sole writer"):
        OptunaControl(
            _db(tmp_path, "s"),
            "c/control",
            space,
            seed=0,
            higher_is_better=True,
            worker="w1",
            sole_writer=True,
        )
