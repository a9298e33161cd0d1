"""Any recipe can be a campaign's baseline; one profile object, overrides applied, feeds everything.

* ``baseline=fedprox`` (a shipped recipe) and ``baseline=<a user's file>``: the control arm tunes exactly that
  recipe's declared scalars, runs that file, and the agents derive from it (real campaigns, subprocesses).
* A baseline the validator rejects stops the campaign before anything runs, with one message.
* The agent's view of the surface (its surface table, the budget it is told) reflects the campaign's
  overrides, not the shipped YAML.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from afr.campaign import Campaign
from afr.recipe import recipe_source
from afr.run import campaign_settings

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600
SMALL = [
    "agent=evolve",
    "profile=synthetic",
    "profile.rounds=2",
    "profile.local_steps=5",
    "campaign.runs_per_arm=3",
    "campaign.workers=2",
]

USER_RECIPE = '''\
"""A user's recipe: FedAvg with server momentum written by hand."""

import torch

from afr.recipe import FedAvg, scalar, weighted_mean_delta


class MyMomentum(FedAvg):
    name = "my_momentum"

    beta = scalar(0.5, 0.0, 0.95)

    def aggregate(self, global_params, updates, server_state):
        delta = weighted_mean_delta(updates)
        velocity = server_state.setdefault("v", {k: torch.zeros_like(d) for k, d in delta.items()})
        for k in velocity:
            velocity[k] = self.beta * velocity[k] + delta[k]
        return {k: global_params[k] + self.server_lr * velocity[k] for k in global_params}
'''


Done = subprocess.CompletedProcess


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["AFR_DATA_DIR"] = str(tmp / "data")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def _start(tmp: Path, *overrides: str) -> subprocess.Popen:
    tmp.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "afr.run", *SMALL, f"campaign.dir={tmp / 'campaign'}", *overrides],
        cwd=tmp,
        env=_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(proc.args)} timed out:\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(scope="module")
def campaigns(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Both campaigns started at once (each ~10 s of imports and a sandbox start), then awaited."""
    fedprox = tmp_path_factory.mktemp("fedprox")
    user = tmp_path_factory.mktemp("user")
    (user / "recipes").mkdir()
    (user / "recipes" / "my_momentum.py").write_text(USER_RECIPE)
    procs = {
        "fedprox": (
            fedprox,
            _start(
                fedprox,
                "baseline=fedprox",
                "campaign.top_k=1",
                "campaign.final_seeds=2",
                "campaign.heldout_seeds=1",
            ),
        ),
        # A relative path, resolved against the directory the command is started from.
        "user": (user, _start(user, "baseline=recipes/my_momentum.py", "campaign.finals=false")),
    }
    return {name: (tmp, _finish(proc)) for name, (tmp, proc) in procs.items()}


def _ledger(tmp: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp / "campaign" / "ledger.db")


def _control_params(tmp: Path) -> set[frozenset[str]]:
    """The parameter names of every trial of the control arm's Optuna study."""
    with _ledger(tmp) as db:
        rows = db.execute(
            "SELECT t.trial_id, p.param_name FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "LEFT JOIN trial_params p ON p.trial_id = t.trial_id WHERE s.study_name LIKE '%/control'"
        ).fetchall()
    by_trial: dict[int, set[str]] = {}
    for trial, name in rows:
        by_trial.setdefault(trial, set())
        if name is not None:
            by_trial[trial].add(name)
    assert len(by_trial) > 1, "the control asked more than its trial 0"
    return {frozenset(names) for trial, names in by_trial.items() if trial != min(by_trial)}


def _candidates(tmp: Path, arm: str) -> list[tuple[str, str, dict]]:
    with _ledger(tmp) as db:
        rows = db.execute(
            "SELECT source, status, meta FROM afr_candidates WHERE arm = ? ORDER BY id", (arm,)
        ).fetchall()
    return [
        (source, status, json.loads(meta) if isinstance(meta, str) else meta) for source, status, meta in rows
    ]


def test_shipped_baseline_fedprox(campaigns) -> None:
    tmp, done = campaigns["fedprox"]
    assert done.returncode == 0, done.stdout + done.stderr
    fedprox = recipe_source("fedprox")
    control = _candidates(tmp, "control")
    assert control and all(source == fedprox.text for source, _, _ in control)
    assert all(meta.get("builtin") == "fedprox" for _, _, meta in control)
    # The control tunes FedProx's declared scalars (trial 0 is the baseline's defaults, enqueued).
    assert _control_params(tmp) == {frozenset({"lr", "mu", "server_lr"})}
    agent = [(source, status) for source, status, _ in _candidates(tmp, "agent")]
    assert agent and all(re.search(r"^class \w+\(FedProx\):", s, re.M) for s, _ in agent), agent[0][0]
    assert any(status == "ok" for _, status in agent)
    report = (tmp / "campaign" / "report.md").read_text()
    assert "baseline `FedProx` (`afr/recipe/fedprox.py`)" in report


def test_user_file_baseline(campaigns) -> None:
    tmp, done = campaigns["user"]
    assert done.returncode == 0, done.stdout + done.stderr
    text = (tmp / "recipes" / "my_momentum.py").read_text()
    control = _candidates(tmp, "control")
    assert control and all(source == text for source, _, _ in control)
    assert all(meta.get("class_name") == "MyMomentum" for _, _, meta in control)
    assert any(status == "ok" for _, status, _ in control)
    assert _control_params(tmp) == {frozenset({"beta", "lr", "server_lr"})}
    agent = [(source, status) for source, status, _ in _candidates(tmp, "agent")]
    # The user's class is not importable: every candidate carries its code, edited or subclassed.
    assert agent and all("class MyMomentum(FedAvg):" in source for source, _ in agent)
    assert any(status == "ok" for _, status in agent)


def test_rejected_baseline_stops_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text(
        "import os\n\nfrom afr.recipe import FedAvg\n\n\nclass Bad(FedAvg):\n    name = 'bad'\n"
    )
    done = _finish(_start(tmp_path, "baseline=bad.py"))
    text = done.stdout + done.stderr
    assert done.returncode == 2, text
    assert "Traceback" not in text
    assert "bad.py" in text and "import-not-allowed" in text
    assert not (tmp_path / "campaign" / "ledger.db").exists()


def _settings(tmp: Path, *overrides: str):
    with initialize_config_module(config_module="afr.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*overrides, f"campaign.dir={tmp}"])
    return campaign_settings(cfg)


@pytest.mark.parametrize("rounds", [3, 7])
def test_agent_view_reflects_overrides(tmp_path: Path, rounds: int) -> None:
    settings = _settings(
        tmp_path,
        "agent=evolve",
        "profile=synthetic",
        f"profile.rounds={rounds}",
        "profile.search_space.lr.high=0.05",
        "baseline=fedprox",
    )
    campaign = Campaign(settings, echo=lambda _: None)
    try:
        assert campaign.table.budget.rounds == rounds
        assert campaign.table.tunable_scalars["lr"].high == 0.05
        assert set(campaign.table.tunable_scalars) == {"lr", "mu", "server_lr"}
        assert f"Budget of one FL run: {rounds} rounds × 50 local steps" in campaign.surface_doc
        assert re.search(r"\| `lr` \| [^|]+ \| [^|]+ \| 0\.05 \|", campaign.surface_doc)
        assert "Baseline: `FedProx` from `afr/recipe/fedprox.py`" in campaign.surface_doc
        ctx = campaign._context(0)
        assert f"rounds: {rounds}" in ctx.profile_description
        assert ctx.baseline == recipe_source("fedprox")
        assert campaign.control.space == dict(campaign.table.tunable_scalars)
    finally:
        campaign.runner.close()
