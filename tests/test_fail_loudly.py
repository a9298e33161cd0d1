"""Campaigns that fail loudly, driven as a user would: ``python -m afr.run agent=evolve ...`` in a subprocess,
from a folder of its own, with real files.

* a relative ``data_dir`` (and campaign dir) works: paths are resolved once, in the parent, before the
  sandbox (which runs in another directory) sees them;
* a baseline that fails in the sandbox stops the campaign before the search, with its reason in one line,
  exit != 0 and nothing charged to either arm;
* each failed run prints its reason; an arm that ends with no successful run exits != 0 and says why.

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


def afr_run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "afr.run", "agent=evolve", *TINY, *args, "hydra.run.dir=hydra"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return done


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
