"""Campaigns that fail loudly, driven as a user would: ``python -m afr.run agent=evolve ...`` in a subprocess,
from a folder of its own, with real files.

* a relative ``data_dir`` (and campaign dir) works: paths are resolved once, in the parent, before the
  sandbox (which runs in another directory) sees them;
* a baseline that fails in the sandbox stops the campaign before the search, with its reason in one line,
  exit != 0 and nothing charged to either arm;
* each failed run prints its reason; an arm that ends with no successful run exits != 0 and says why;
* a single run (``recipe=<file.py>``, sandboxed) with a relative ``data_dir`` trains; one whose every seed
  fails exits != 0.

Budgets are tiny (heart_disease, 2 rounds of 5 local steps, 2 runs per arm, 1 finalist on 2 seeds).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from afr.ledger import Ledger

REPO = Path(__file__).resolve().parents[1]
DATA = Path("/work/shared/data/heart_disease")
TIMEOUT = 600
TINY = [
    "profile=heart_disease",
    "profile.rounds=2",
    "profile.local_steps=5",
    "campaign.runs_per_arm=2",
    "campaign.top_k=1",
    "campaign.final_seeds=2",
    "campaign.heldout_seeds=1",
    "campaign.workers=1",
    "campaign.timeout_s=300",
]

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="heart_disease data not available")


def user_folder(tmp: Path) -> Path:
    """A user's working folder with the heart_disease files under ``data/`` (a copy: nothing shared)."""
    target = tmp / "data" / "heart_disease"
    target.mkdir(parents=True)
    for file in DATA.iterdir():
        if file.is_file():
            shutil.copy2(file, target / file.name)
    return tmp


def afr_run(cwd: Path, *args: str, agent: str = "evolve") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "afr.run", f"agent={agent}", *TINY, *args, "hydra.run.dir=hydra"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return done


def single_run(folder: Path) -> subprocess.CompletedProcess:
    """``python -m afr.run profile=heart_disease recipe=mine.py data_dir=data seeds=1`` (2 tiny rounds)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    args = ["profile=heart_disease", "recipe=mine.py", "data_dir=data", "seeds=1", "profile.rounds=2"]
    return subprocess.run(
        [sys.executable, "-m", "afr.run", *args, "profile.local_steps=5", "hydra.run.dir=hydra"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def charged_runs(ledger: Ledger, campaign_id: int) -> dict[str, int]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT arm, SUM(runs) FROM afr_charges WHERE campaign_id = :c GROUP BY arm"),
            {"c": campaign_id},
        ).all()
    return {arm: int(runs) for arm, runs in rows if runs}


def test_a_relative_data_dir_and_campaign_dir_run_ok(tmp_path: Path) -> None:
    folder = user_folder(tmp_path)
    done = afr_run(folder, "data_dir=data", "campaign.dir=camp", "campaign.name=rel")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Traceback" not in out
    ledger = Ledger.for_campaign_dir(folder / "camp")
    campaign = ledger.campaign_by_name("rel")
    assert campaign is not None and campaign.status == "finished", out
    runs = ledger.runs(campaign.id)
    search = [r for r in runs if r.stage == "search"]
    assert len(search) == 4, out
    assert all(r.status == "ok" for r in runs), [(r.run_key, r.status, r.message) for r in runs]
    assert any(r.stage == "final" for r in runs), out


def test_a_sandboxed_single_run_with_a_relative_data_dir(tmp_path: Path) -> None:
    """``recipe=<file.py>`` trains in the sandbox: the relative data folder must reach it resolved too."""
    folder = user_folder(tmp_path)
    (folder / "mine.py").write_text(FRAGILE.format(fail_from=99))  # never breaks in 2 rounds
    done = single_run(folder)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "untrusted" in out and "over 1 seeds" in out, out


def test_a_single_run_whose_every_seed_fails_exits_non_zero(tmp_path: Path) -> None:
    folder = user_folder(tmp_path)
    (folder / "mine.py").write_text(FRAGILE.format(fail_from=0))
    done = single_run(folder)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out
    lines = out.splitlines()
    assert any(line.startswith("seed   42  failed") and "broken in round 0" in line for line in lines), out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no seed" in errors[0], out


FRAGILE = '''\
"""A baseline that passes the validator and breaks at run time, from round {fail_from} on."""

from afr.recipe import FedAvg


class Fragile(FedAvg):
    name = "fragile"

    def select_clients(self, round_idx, num_clients, rng):
        if round_idx >= {fail_from}:
            raise RuntimeError(f"fragile baseline: broken in round {{round_idx}}")
        return list(range(num_clients))
'''


def fragile_campaign(tmp: Path, fail_from: int) -> tuple[Path, subprocess.CompletedProcess]:
    folder = user_folder(tmp)
    (folder / "fragile.py").write_text(FRAGILE.format(fail_from=fail_from))
    done = afr_run(
        folder, "data_dir=data", "baseline=fragile.py", "campaign.dir=camp", "campaign.name=fragile"
    )
    return folder, done


def test_a_baseline_that_fails_in_the_sandbox_stops_before_the_search(tmp_path: Path) -> None:
    folder, done = fragile_campaign(tmp_path, fail_from=0)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, out
    assert "preflight" in lines[0] and "fragile baseline: broken in round 0" in lines[0], out
    assert "[control]" not in out and "[  agent]" not in out, "no search run may start"
    ledger_file = folder / "camp" / "ledger.db"
    if ledger_file.exists():  # nothing recorded, nothing charged
        ledger = Ledger.for_campaign_dir(folder / "camp")
        campaign = ledger.campaign_by_name("fragile")
        assert campaign is None or charged_runs(ledger, campaign.id) == {}, out


def test_a_baseline_that_fails_its_first_search_run_fails_the_campaign(tmp_path: Path) -> None:
    # The preflight (one round) passes; the baseline's full search run breaks in round 1.
    folder, done = fragile_campaign(tmp_path, fail_from=1)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out
    failed_lines = [line for line in out.splitlines() if line.startswith("[control]") and " failed " in line]
    assert len(failed_lines) == 1 and "broken in round 1" in failed_lines[0], out
    assert "[  agent]" not in out, "the search stops after the baseline failed"
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "baseline" in errors[0] and "broken in round 1" in errors[0], out
    ledger = Ledger.for_campaign_dir(folder / "camp")
    campaign = ledger.campaign_by_name("fragile")
    assert campaign is not None and campaign.status == "failed", out
    assert charged_runs(ledger, campaign.id) == {"control": 1}, "one charged run, no finals"
    assert not ledger.runs(campaign.id, stage="final")
    report = (folder / "camp" / "report.md").read_text()
    assert "the campaign failed" in report and "broken in round 1" in report


BROKEN_AGENT_FILE = """Breaks at run time (number {n}).

```python
from afr.recipe import FedAvg


class Broken{n}(FedAvg):
    name = "broken{n}"

    def client_lr(self, round_idx, client):
        raise RuntimeError("agent file {n}: broken at run time")
```
"""


def test_an_arm_with_no_successful_run_fails_the_campaign(tmp_path: Path) -> None:
    """Every file the (scripted) LLM agent writes passes the validator and fails at run time; the control
    arm runs fine. The campaign ends failed, exit 1, each failed run on the console with its reason."""
    from tests._fake_openai import FakeOpenAI

    count = iter(range(1000))
    folder = user_folder(tmp_path)
    with FakeOpenAI([lambda body: BROKEN_AGENT_FILE.format(n=next(count))] * 50) as server:
        done = afr_run(
            folder,
            "data_dir=data",
            f"agent.base_url={server.base_url}",
            "agent.max_retries=0",
            "agent.backoff_s=0",
            "agent.timeout_s=30",
            "agent.proposals_per_step=1",
            "campaign.dir=camp",
            "campaign.name=broken",
            agent="local",
        )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out
    agent_lines = [line for line in out.splitlines() if line.startswith("[  agent]")]
    assert len(agent_lines) == 2, out
    assert all(" failed " in line and "broken at run time" in line for line in agent_lines), out
    control_lines = [line for line in out.splitlines() if line.startswith("[control]")]
    assert len(control_lines) == 2 and all(" ok " in line for line in control_lines), out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "the agent arm has no successful run" in errors[0], out
    assert "control arm" not in errors[0], out
    ledger = Ledger.for_campaign_dir(folder / "camp")
    campaign = ledger.campaign_by_name("broken")
    assert campaign is not None and campaign.status == "failed", out
    assert charged_runs(ledger, campaign.id) == {"agent": 2, "control": 2}, "no finals for a failed campaign"
    report = (folder / "camp" / "report.md").read_text()
    assert "the campaign failed: the agent arm has no successful run" in report
