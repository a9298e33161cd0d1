"""The control arm: an Optuna study over the baseline's declared scalars, sharing the ledger's database."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import optuna
import pytest
import yaml
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from afr.controls import (
    AgentStudyRecorder,
    ControlTrial,
    OptunaControl,
    make_control,
    open_storage,
    record_agent_candidate,
)
from afr.errors import ConfigError
from afr.ledger import Ledger
from afr.profiles import make_profile
from afr.recipe import FedAvg, Scalar

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def space() -> dict[str, Scalar]:
    return make_profile("heart_disease").scalar_space(FedAvg)


def _score(scalars: dict[str, float]) -> float:
    """A smooth scripted objective with its peak inside the range (lr ~ 0.02, server_lr ~ 1)."""
    return 1.0 - (math.log10(scalars["lr"]) + 1.7) ** 2 - 0.5 * math.log10(scalars["server_lr"]) ** 2


def _in_range(scalars: dict[str, float], space: dict[str, Scalar]) -> bool:
    return set(scalars) == set(space) and all(space[k].low <= v <= space[k].high for k, v in scalars.items())


def _db(tmp_path: Path, name: str) -> str:
    """A fresh database created by the ledger, as in a campaign (SQLite in WAL mode)."""
    with Ledger.for_campaign_dir(tmp_path / name) as ledger:
        return ledger.url


def _control(url: str, space: dict[str, Scalar], name: str = "c/control", **kw) -> OptunaControl:
    kw.setdefault("seed", 0)
    kw.setdefault("higher_is_better", True)
    return OptunaControl(url, name, space, **kw)


def test_studies_share_the_ledger_database(tmp_path, space):
    ledger = Ledger.for_campaign_dir(tmp_path / "camp")
    url = ledger.url
    control = _control(url, space, n_startup_trials=3)
    for _ in range(5):
        trial = control.ask()
        control.tell(trial.number, _score(trial.scalars), message="ok")
    assert record_agent_candidate(url, "c/agent", 7, 0.61, diff="+ x = 1\n" * 5000, note="prox") == 0
    assert record_agent_candidate(url, "c/agent", 8, None, diff="- y", note="broken") == 1
    assert record_agent_candidate(url, "c/agent", 7, 0.61, diff="+ x = 1", note="prox") == 0  # idempotent

    tables = set(ledger.table_names())
    assert {"afr_campaigns", "afr_candidates", "afr_runs"} <= tables
    assert {"studies", "trials", "trial_params", "trial_values", "trial_user_attributes"} <= tables

    # The plain Optuna API (as optuna-dashboard uses it) sees both arms.
    assert {"c/control", "c/agent"} <= set(optuna.study.get_all_study_names(url))
    summaries = {s.study_name: s for s in optuna.get_all_study_summaries(url)}
    assert summaries["c/control"].n_trials == 5 and summaries["c/agent"].n_trials == 2

    study = optuna.load_study(study_name="c/control", storage=url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["afr_arm"] == "control"
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5
    for t in study.trials:
        assert set(t.params) == {"lr", "server_lr"}
        assert _in_range(t.params, space)
        assert t.distributions["lr"] == FloatDistribution(space["lr"].low, space["lr"].high, log=True)
        assert t.user_attrs["message"] == "ok"
    assert study.best_value == max(_score(t.params) for t in study.trials)

    agent = optuna.load_study(study_name="c/agent", storage=url)
    assert agent.user_attrs["afr_arm"] == "agent"
    first, second = agent.trials
    assert first.state == TrialState.COMPLETE and first.value == 0.61 and first.params == {}
    assert first.user_attrs["candidate_id"] == 7 and first.user_attrs["note"] == "prox"
    assert first.user_attrs["diff"].startswith("+ x = 1") and len(first.user_attrs["diff"]) < 9000
    assert second.state == TrialState.FAIL and second.user_attrs["candidate_id"] == 8
    assert second.user_attrs["diff"] == "- y"
    assert AgentStudyRecorder(url, "c/agent").find(8).number == 1
    # The campaign's one recorder (exclusive: it remembers instead of reading) knows what was recorded
    # before it opened, and records each candidate once.
    recorder = AgentStudyRecorder(url, "c/agent", exclusive=True)
    assert recorder.record(7, 0.61) == 0 and recorder.record(8, None) == 1
    assert recorder.record(9, 0.7, name="agent#9") == 2 == recorder.record(9, 0.7)
    assert recorder.record(10, 0.5) == 3  # the number it knows without reading the study back ...
    reread = optuna.load_study(study_name="c/agent", storage=url).trials
    assert [t.user_attrs["candidate_id"] for t in reread] == [7, 8, 9, 10]  # ... is the study's
    assert AgentStudyRecorder(url, "c/agent").find(10).number == 3
    ledger.close()


def test_trial_zero_is_the_baseline_and_values_stay_in_range(tmp_path, space):
    url = _db(tmp_path, "s")
    control = _control(url, space, sampler="random")
    asked = []
    for _ in range(40):
        trial = control.ask()
        asked.append(trial)
        control.tell(trial.number, _score(trial.scalars))
    assert asked[0] == ControlTrial(0, {"lr": 0.001, "server_lr": 1.0})
    assert asked[0].scalars == control.defaults() == {n: s.default for n, s in space.items()}
    assert control.trials()[0].meta["baseline_defaults"] is True
    assert [t.number for t in asked] == list(range(40))
    assert all(_in_range(t.scalars, space) for t in asked)
    assert all(isinstance(v, float) for t in asked for v in t.scalars.values())
    # log scale: lr ~ log-uniform on [1e-4, 0.3] puts ~40% of draws below 0.003 (uniform: ~1%).
    small = sum(t.scalars["lr"] < 3e-3 for t in asked[1:])
    assert small >= 8, [t.scalars["lr"] for t in asked]

    # A TPE control (past its startup trials) stays in range too.
    tpe = _control(url, space, name="tpe/control", n_startup_trials=4)
    for _ in range(12):
        trial = tpe.ask()
        assert _in_range(trial.scalars, space)
        tpe.tell(trial.number, _score(trial.scalars))

    # Without enqueue_defaults trial 0 is a sampled point.
    plain = _control(url, space, name="plain/control", enqueue_defaults=False)
    assert plain.ask().scalars != plain.defaults()


def test_failed_trials_and_best_respect_direction(tmp_path, space):
    url = _db(tmp_path, "s")
    for higher, name in ((True, "max/control"), (False, "min/control")):
        control = _control(url, space, name=name, higher_is_better=higher)
        scores = [0.5, None, 0.9, float("nan"), 0.2]
        for score in scores:
            control.tell(control.ask().number, score, message="run failed" if score is None else "")
        study = optuna.load_study(study_name=name, storage=url)
        states = [t.state for t in study.trials]
        assert states == [
            TrialState.COMPLETE,
            TrialState.FAIL,
            TrialState.COMPLETE,
            TrialState.FAIL,
            TrialState.COMPLETE,
        ]
        assert study.trials[1].user_attrs["message"] == "run failed"
        assert "non-finite" in study.trials[3].user_attrs["message"]
        best = control.best()
        assert best is not None and best.state == "ok"
        assert (best.number, best.score) == ((2, 0.9) if higher else (4, 0.2))
        assert [t.state for t in control.trials()] == ["ok", "failed", "ok", "failed", "ok"]
        assert control.pending() == []

    empty = _control(url, space, name="empty/control")
    assert empty.best() is None
    only_failed = _control(url, space, name="failed/control")
    only_failed.tell(only_failed.ask().number, None)
    assert only_failed.best() is None


def test_resume_returns_pending_trials_and_continues(tmp_path, space):
    url = _db(tmp_path, "s")
    control = _control(url, space, n_startup_trials=2)
    asked = [control.ask() for _ in range(3)]
    control.tell(asked[0].number, 0.4)
    control.tell(asked[2].number, 0.6)
    del control

    resumed = _control(url, space, n_startup_trials=2)
    pending = resumed.pending()
    assert [(t.number, t.scalars, t.state) for t in pending] == [(1, asked[1].scalars, "pending")]
    resumed.tell(1, 0.5)
    resumed.tell(1, 0.99)  # a second tell of a finished trial changes nothing
    assert resumed.pending() == []
    assert [t.score for t in resumed.trials()] == [0.4, 0.5, 0.6]
    assert resumed.ask().number == 3
    assert len(optuna.load_study(study_name="c/control", storage=url).trials) == 4  # baseline not re-enqueued
    with pytest.raises(ValueError, match="no trial 17"):
        resumed.tell(17, 0.1)


def test_half_asked_trial_is_failed_on_resume(tmp_path, space):
    url = _db(tmp_path, "s")
    control = _control(url, space)
    control.tell(control.ask().number, 0.4)
    study = optuna.load_study(study_name="c/control", storage=url)
    half = study.ask()  # a crash after creating the trial, before all values were stored
    half.suggest_float("lr", space["lr"].low, space["lr"].high, log=True)
    resumed = _control(url, space)
    assert resumed.pending() == []
    assert resumed.trials()[1].state == "failed"
    assert resumed.trials()[1].message == "interrupted while being asked"


def _run(url: str, space, n: int, *, crash_after: int | None = None) -> list[dict[str, float]]:
    """Ask/tell n trials with scripted scores; optionally 'crash' with one trial pending and resume."""
    control = _control(url, space, seed=3, n_startup_trials=4)
    asked: list[dict[str, float]] = []
    while len(asked) < n:
        trial = control.ask()
        asked.append(trial.scalars)
        if crash_after is not None and len(asked) == crash_after:
            control = _control(url, space, seed=3, n_startup_trials=4)  # the process died before the tell
            [trial] = control.pending()
        control.tell(trial.number, _score(trial.scalars))
    return asked


def test_same_seed_same_scores_same_proposals(tmp_path, space):
    first = _run(_db(tmp_path, "a"), space, 12)
    second = _run(_db(tmp_path, "b"), space, 12)
    assert first == second
    assert len({tuple(s.values()) for s in first}) == 12
    # A crash with a pending trial, resumed and re-told the same score, continues the same sequence.
    assert _run(_db(tmp_path, "c"), space, 12, crash_after=6) == first
    # Another seed proposes other values.
    other = OptunaControl(_db(tmp_path, "d"), "c/control", space, seed=4, higher_is_better=True)
    other.tell(other.ask().number, 0.1)
    assert other.ask().scalars != first[1]


def test_resume_checks_space_and_direction(tmp_path, space):
    url = _db(tmp_path, "s")
    _control(url, space)
    narrowed = {**space, "lr": space["lr"].with_range(high=0.1)}
    with pytest.raises(ConfigError, match="another scalar space"):
        _control(url, narrowed)
    with pytest.raises(ConfigError, match="direction"):
        _control(url, space, higher_is_better=False)
    bad_default = {**space, "lr": space["lr"].with_range(default=0.5)}
    with pytest.raises(ConfigError, match="outside its range"):
        _control(url, bad_default, name="other/control")


def test_make_control_from_the_shipped_config(tmp_path, space):
    cfg = yaml.safe_load((ROOT / "afr/conf/control/optuna.yaml").read_text())
    assert cfg == {"kind": "optuna", "sampler": "tpe", "n_startup_trials": 8, "enqueue_defaults": True}
    url = _db(tmp_path, "s")
    control = make_control(cfg, url, "m/control", space, seed=1, higher_is_better=True)
    assert isinstance(control, OptunaControl) and control.n_startup_trials == 8
    assert control.ask().scalars == control.defaults()
    with pytest.raises(ConfigError, match="unknown control kind"):
        make_control({"kind": "grid"}, url, "x/control", space, 1, True)
    with pytest.raises(ConfigError, match="no setting"):
        make_control({"kind": "optuna", "n_trials": 5}, url, "x/control", space, 1, True)
    with pytest.raises(ConfigError, match="unknown control sampler"):
        make_control({"sampler": "cmaes"}, url, "x/control", space, 1, True)


def test_control_arm_imports_no_agent_engine_or_sandbox():
    code = (
        "import sys, afr.controls\n"
        "bad = [m for m in sys.modules if m.split('.')[:2] in "
        "(['afr', 'agents'], ['afr', 'engine'], ['afr', 'sandbox'], ['afr', 'campaign'])]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_optuna_dashboard_serves_both_studies(tmp_path, space):
    optuna_dashboard = pytest.importorskip("optuna_dashboard")  # a declared dependency of afr
    ledger = Ledger.for_campaign_dir(tmp_path / "camp")
    control = _control(ledger.url, space, name="dash/control")
    control.tell(control.ask().number, 0.7)
    record_agent_candidate(ledger.url, "dash/agent", 1, 0.8, diff="+ a", note="n")

    app = optuna_dashboard.wsgi(open_storage(ledger.url))
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        with urllib.request.urlopen(f"{base}/api/studies", timeout=20) as reply:
            assert reply.status == 200
            body = json.loads(reply.read())
        studies = {s["study_name"]: s for s in body["study_summaries"]}
        assert {"dash/control", "dash/agent"} <= set(studies)
        agent_id = studies["dash/agent"]["study_id"]
        with urllib.request.urlopen(f"{base}/api/studies/{agent_id}", timeout=20) as reply:
            detail = json.loads(reply.read())
        attrs = {a["key"]: a["value"] for a in detail["trials"][0]["user_attrs"]}
        assert attrs["candidate_id"] == "1" and attrs["diff"] == "+ a"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        ledger.close()
