"""Crash and resume: SIGKILL a sandbox worker and the campaign process mid-run, run the same command
again, and check from the ledger that no finished run was lost, none ran or was charged twice, and the
accountant's totals equal the sum of the runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from afr.budget import BudgetAccountant
from afr.ledger import Ledger

SCRIPT = Path(__file__).with_name("_campaign_script.py")
EXPECTED_RUNS = 8  # 4 agent candidates + 4 control trials, one seed each


def _descendants(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            children.append(int(entry.name))
    return children + [g for c in children for g in _descendants(c)]


def _start(campaign_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(campaign_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
    )


def test_sigkill_mid_run_then_resume(tmp_path: Path) -> None:
    campaign_dir = tmp_path / "campaign"
    proc = _start(campaign_dir)
    ledger = None
    try:
        deadline = time.monotonic() + 240
        finished_before: dict[str, tuple] = {}
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the campaign ended before it could be killed:\n" + proc.stdout.read()
            if (campaign_dir / "ledger.db").exists():
                ledger = ledger or Ledger.for_campaign_dir(campaign_dir)
                runs = ledger.runs(1) if ledger.campaign_by_name("crash-test") else []
                done = [r for r in runs if r.status == "ok"]
                running = [r for r in runs if r.status == "running"]
                if len(done) >= 2 and running:
                    finished_before = {r.run_key: (r.id, r.finished_at, r.final_metric) for r in done}
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("no run was in flight within the deadline")
        # A sandbox worker first, then the campaign process and everything it started.
        workers = _descendants(proc.pid)
        assert workers, "the campaign process has no sandbox workers"
        os.kill(workers[-1], signal.SIGKILL)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)

    assert not (campaign_dir / "DONE").exists()
    resumed = subprocess.run(
        [sys.executable, str(SCRIPT), str(campaign_dir)], capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (campaign_dir / "DONE").exists()

    ledger = Ledger.for_campaign_dir(campaign_dir)
    campaign = ledger.campaign_by_name("crash-test")
    runs = ledger.runs(campaign.id)
    keys = [r.run_key for r in runs]
    assert len(keys) == len(set(keys)) == EXPECTED_RUNS, keys
    assert all(r.status == "ok" for r in runs), [(r.run_key, r.status, r.message) for r in runs]
    for key, (run_id, finished_at, metric) in finished_before.items():
        again = ledger.run_by_key(campaign.id, key)
        assert (again.id, again.finished_at, again.final_metric) == (run_id, finished_at, metric), key

    accountant = BudgetAccountant(ledger, campaign.id, {})
    assert accountant.pending() == []
    totals = accountant.totals()
    charged_runs = sum(totals[arm]["spent_runs"] for arm in ("agent", "control"))
    assert charged_runs == len(runs) == EXPECTED_RUNS
    for arm in ("agent", "control"):
        arm_runs = [r for r in runs if r.run_key.startswith(arm + "/")]
        assert totals[arm]["spent_runs"] == len(arm_runs) == EXPECTED_RUNS // 2
        # each run is charged its budgeted client-steps, and FedAvg-style runs spend exactly that
        assert totals[arm]["spent_client_steps"] == 12 * 10 * 40 * len(arm_runs)
        assert sum(r.steps for r in arm_runs) == totals[arm]["spent_client_steps"]
