"""``afr evaluate``: one recipe through the protocol; bad input stops it with one line and nothing written.
And the held-out center of a FLamby campaign: absent from every search-time data access.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from afr.cli import main as afr_cli
from afr.ledger import Ledger
from afr.profiles import load_profile_config, make_profile
from afr.sandbox._zygote import load_training_profile

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600
TINY = ["profile.rounds=2", "profile.local_steps=5", "campaign.runs_per_arm=2", "campaign.final_seeds=2"]

BAD = "import os\n\nfrom afr.recipe import FedAvg\n\n\nclass Bad(FedAvg):\n    pass\n"
LR_ONLY = '''"""FedAvg with only its client learning rate changed: no new mechanism."""

from afr.recipe import FedAvg, scalar


class LrOnly(FedAvg):
    name = "lr_only"

    lr = scalar(0.05, 1e-5, 1.0, log=True)
'''


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["AFR_DATA_DIR"] = str(tmp / "no-data")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def _start(tmp: Path, *args: str, module: str = "afr.evaluate") -> subprocess.Popen:
    tmp.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", module, *args, f"campaign.dir={tmp / 'campaign'}"],
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
def runs(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, tuple[Path, object]]:
    """Every subprocess started at once (each pays ~10 s of imports), then awaited."""
    base = tmp_path_factory.mktemp("evaluate")
    rejected = base / "rejected"
    rejected.mkdir()
    (rejected / "bad.py").write_text(BAD)
    lr_only = base / "lr_only"
    lr_only.mkdir()
    (lr_only / "lr_only.py").write_text(LR_ONLY)
    heart = [f"data_dir={shared_data}", *TINY]
    started = {
        "rejected": (rejected, _start(rejected, "profile=synthetic", "recipe=bad.py")),
        "unknown": (base / "unknown", _start(base / "unknown", "profile=synthetic", "recipe=nope")),
        "agent": (
            base / "agent",
            _start(base / "agent", "profile=synthetic", "recipe=fedadam", "agent=evolve"),
        ),
        # a user's file, given by a path relative to where the command starts
        "lr_only": (lr_only, _start(lr_only, "profile=synthetic", "recipe=lr_only.py", *TINY)),
        # a FLamby profile: its held-out center (VA) is set aside from the search and the finals' training
        "heart": (
            base / "heart",
            _start(base / "heart", "profile=heart_disease", "recipe=fedadam", *heart),
        ),
    }
    return {name: (tmp, _finish(proc)) for name, (tmp, proc) in started.items()}


def _one_clear_line(done) -> str:
    text = done.stdout + done.stderr
    assert done.returncode == 2, text
    assert "Traceback" not in text and done.stderr.startswith("error: "), text
    return done.stderr


def test_a_rejected_recipe_stops_before_anything_is_written(runs) -> None:
    tmp, done = runs["rejected"]
    message = _one_clear_line(done)
    assert "bad.py" in message and "import-not-allowed" in message and "fix:" in message
    assert not (tmp / "campaign").exists()


def test_an_unknown_recipe_and_an_agent_are_refused(runs) -> None:
    for name, words in (("unknown", ["nope", "fedavg"]), ("agent", ["agent="])):
        tmp, done = runs[name]
        message = _one_clear_line(done)
        assert all(w in message for w in words), message
        assert not (tmp / "campaign").exists()


def test_a_users_file_goes_through_the_protocol(runs) -> None:
    tmp, done = runs["lr_only"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict for " in done.stdout and "lr_only.py" in done.stdout
    ledger = Ledger.for_campaign_dir(tmp / "campaign")
    campaign = ledger.campaign_by_name("synthetic-evaluate-lr_only-seed0")
    assert campaign is not None
    agent = ledger.candidates(campaign.id, arm="agent")
    assert len(agent) == 1 and agent[0].source == LR_ONLY
    search = ledger.runs(campaign.id, stage="search")
    assert sorted(ledger.candidate(r.candidate_id).arm for r in search) == ["agent", "control", "control"]
    finals = ledger.runs(campaign.id, stage="final")
    assert {r.seed for r in finals} == {42, 43}
    assert (tmp / "campaign" / "report.md").is_file()


def test_the_heldout_center_is_absent_from_every_search_time_data_access(runs, shared_data: Path) -> None:
    tmp, done = runs["heart"]
    assert done.returncode == 0, done.stdout + done.stderr
    ledger = Ledger.for_campaign_dir(tmp / "campaign")
    campaign = ledger.campaign_by_name("heart_disease-evaluate-fedadam-seed0")
    assert campaign is not None
    cfg = campaign.config["profile_cfg"]
    assert cfg["heldout_clients"] == [3], "the campaign recorded VA as set aside"
    # What every sandboxed search run trained and validated on: the zygote's profile for that config.
    trained = load_training_profile("heart_disease", cfg, str(shared_data))
    assert trained.training_client_names == ["cleveland", "hungarian", "switzerland"]
    va = make_profile("heart_disease", data_dir=shared_data)
    va_rows = len(va.data("train")[3]) + len(va.data("test")[3])
    full_rows = sum(len(d) for part in ("train", "test") for d in va.data(part))
    seen_rows = sum(len(d) for d in trained.data("train"))
    assert seen_rows == sum(len(d) for d in va.data("train")[:3]) and seen_rows < full_rows - va_rows + 1
    with pytest.raises(RuntimeError, match="dropped the held-out data"):
        trained.heldout_data()  # dropped with the test split: a worker holds neither
    for run in ledger.runs(campaign.id, stage="search"):  # validation curves over the 3 training centers
        assert run.per_round and all(len(r["val_per_client"]) == 3 for r in run.per_round)
    for run in ledger.runs(campaign.id, stage="final"):  # the parent evaluates VA on the final weights
        assert len(run.evaluation["test"]["per_client"]) == 3
        assert len(run.evaluation["heldout"]["per_client"]) == 1
    report = (tmp / "campaign" / "report.md").read_text()
    assert "heldout_clients" in report and "MDE" in report


def test_single_runs_keep_flambys_federation(shared_data: Path) -> None:
    cfg = load_profile_config("heart_disease")
    assert make_profile("heart_disease", cfg, data_dir=shared_data).training_client_names == [
        "cleveland", "hungarian", "switzerland", "va"
    ]  # fmt: skip


def test_afr_evaluate_is_the_same_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = afr_cli(["evaluate", "profile=synthetic", "recipe=nope", f"campaign.dir={tmp_path / 'c'}"])
    assert code == 2
    assert "nope" in capsys.readouterr().err and not (tmp_path / "c").exists()
