"""docs/worked_example.md is produced by real commands; this test re-runs them and fails when it is stale.

Regenerate with (from the repository root):

    python -m afr.run <COMMAND args> campaign.dir=/tmp/we
    python -m afr.report /tmp/we --worked-example --output docs/worked_example.md
"""

from __future__ import annotations

import difflib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND = [
    "agent=evolve",
    "profile=synthetic",
    "campaign.name=worked-example",
    "campaign.runs_per_arm=6",
    "campaign.top_k=1",
    "campaign.final_seeds=5",
    "profile.rounds=5",
    "profile.local_steps=20",
]


def test_worked_example_is_up_to_date(tmp_path: Path) -> None:
    campaign = tmp_path / "we"
    run = subprocess.run(
        [sys.executable, "-m", "afr.run", *COMMAND, f"campaign.dir={campaign}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    out = tmp_path / "worked_example.md"
    report = subprocess.run(
        [sys.executable, "-m", "afr.report", str(campaign), "--worked-example", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    committed = (ROOT / "docs" / "worked_example.md").read_text()
    fresh = out.read_text()
    diff = "".join(
        difflib.unified_diff(committed.splitlines(True), fresh.splitlines(True), "committed", "regenerated")
    )
    assert fresh == committed, (
        "docs/worked_example.md is stale: regenerate it with the two commands in this test's docstring\n"
        + diff[:4000]
    )
