"""Ctrl-C loses nothing, however many times it is pressed: driven as a user would, with real signals.

``python -m afr.run agent=evolve profile=synthetic ...`` runs in a subprocess; once the ledger shows runs in
flight, the test sends SIGINT twice (then, in the second test, SIGTERM among them, during the finals). The
command must exit 130 with its one-line message, record no run as crashed, leave every interrupted run
reserved (started, not settled), and the same command must then finish the campaign so that its ledger holds
exactly what an uninterrupted campaign with the same seed holds: the same candidates (names, sources,
hashes, statuses, scores), runs (keys, statuses, scores, curves, evaluations), charges and Optuna trials.
Only timestamps, wall times and row ids may differ: the two arms search side by side, each at its own pace,
so their rows interleave by timing (a candidate is known by its number within its arm).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600
MESSAGE = "interrupted: nothing is lost; run the same command to resume"


def command(folder: Path) -> list[str]:
    return [
        sys.executable, "-m", "afr.run", "agent=evolve", "profile=synthetic",
        "profile.rounds=30", "profile.local_steps=100",
        "campaign.runs_per_arm=4", "campaign.workers=2", "campaign.seed=7",
        "campaign.top_k=1", "campaign.final_seeds=2", "campaign.heldout_seeds=1",
        f"campaign.dir={folder / 'campaign'}", "campaign.name=sig", f"hydra.run.dir={folder / 'hydra'}",
    ]  # fmt: skip


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def run_to_end(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(folder), cwd=folder, env=environment(), capture_output=True, text=True, timeout=TIMEOUT
    )


def query(folder: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of the campaign's ledger, read-only (the campaign may be writing it)."""
    path = folder / "campaign" / "ledger.db"
    if not path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the tables are not there yet
            return []


def content(folder: Path) -> dict[str, Any]:
    """What the ledger says happened, without timestamps, wall times, pids or row ids: the two arms search
    side by side at their own pace, so rows of different arms interleave by timing; candidates are named
    by their number within their arm (``agent#3``), which is what must be reproducible."""
    names: dict[int, str] = {}
    for cid, arm, meta in query(folder, "SELECT id, arm, meta FROM afr_candidates"):
        names[cid] = f"{arm}#{json.loads(meta)['number']}"

    def named(
        text: str | None,
    ) -> str | None:  # ids inside run keys: agent/cand-17/... -> agent/cand-agent#3/...
        return None if text is None else re.sub(r"cand-(\d+)", lambda m: f"cand-{names[int(m[1])]}", text)

    runs = []
    for row in query(
        folder,
        "SELECT run_key, candidate_id, seed, stage, split, status, per_round, final_metric, steps, bytes_up, "
        "bytes_down, artifacts, message, evaluation FROM afr_runs",
    ):
        key, candidate, *head, per_round, final, steps, up, down, artifacts, message, evaluation = row
        runs.append([named(key), names[candidate], *head, json.loads(per_round or "null"), final, steps, up,
                     down, named(artifacts), message, json.loads(evaluation or "null")])  # fmt: skip
    candidates = []
    for row in query(
        folder,
        "SELECT id, arm, agent, parent_id, source, diff, ast_hash, scalars, status, reasons, duplicate_of, "
        "score, meta FROM afr_candidates",
    ):
        cid, arm, agent, parent, *middle, duplicate_of, score, meta = row
        fields = json.loads(meta)
        if "parents" in fields:
            fields["parents"] = [names[p] for p in fields["parents"]]
        candidates.append([names[cid], arm, agent, names.get(parent), *middle, names.get(duplicate_of), score,
                           fields])  # fmt: skip
    trials = []
    for study, number, state, params, values, trial_id in query(
        folder,
        "SELECT s.study_name, t.number, t.state, "
        "(SELECT group_concat(p.param_name || '=' || p.param_value, ',') FROM trial_params p "
        " WHERE p.trial_id = t.trial_id), "
        "(SELECT group_concat(v.value, ',') FROM trial_values v WHERE v.trial_id = t.trial_id), t.trial_id "
        "FROM trials t JOIN studies s ON s.study_id = t.study_id",
    ):
        attrs = {
            key: names[json.loads(value)] if key == "candidate_id" else value
            for key, value in query(
                folder, f"SELECT key, value_json FROM trial_user_attributes WHERE trial_id = {trial_id}"
            )
        }
        trials.append([study, number, state, params, values, attrs])
    return {
        "campaigns": query(folder, "SELECT id, name, profile, agent, config_hash, status FROM afr_campaigns"),
        "candidates": sorted(candidates, key=repr),
        "runs": sorted(runs, key=repr),
        "charges": sorted(
            [named(key), *rest]
            for key, *rest in query(
                folder, "SELECT run_key, arm, runs, client_steps, status, outcome FROM afr_charges"
            )
        ),
        "costs": sorted(
            (names.get(candidate), *rest)
            for candidate, *rest in query(
                folder, "SELECT candidate_id, arm, kind, model, prompt_tokens FROM afr_costs"
            )
        ),
        "trials": sorted(trials, key=repr),
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("uninterrupted")
    done = run_to_end(folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return content(folder)


def interrupt(folder: Path, stage: str, signals: list[signal.Signals]) -> subprocess.CompletedProcess:
    """Start the campaign, wait (polling its ledger) until a ``stage`` run is in flight after at least two
    finished runs, send ``signals`` (a short gap between them), and wait for the command to end."""
    proc = subprocess.Popen(
        command(folder),
        cwd=folder,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert time.monotonic() < deadline, "no run was in flight within the deadline"
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"the campaign ended before it could be interrupted:\n{out}\n{err}")
            statuses = query(folder, "SELECT stage, status FROM afr_runs")
            if sum(s == "ok" for _, s in statuses) >= 2 and (stage, "running") in statuses:
                break
            time.sleep(0.02)
        for i, signum in enumerate(signals):
            if i:
                time.sleep(0.2)  # a gap, as between two key presses (not a timing assumption)
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def check_interrupted(folder: Path, done: subprocess.CompletedProcess) -> set[str]:
    """The invariants of a stopped campaign; the runs it left in flight (empty when the signal landed between
    two runs: then nothing was in flight to leave)."""
    out = done.stdout + done.stderr
    assert done.returncode == 130, out
    assert done.stderr.strip().splitlines()[-1] == MESSAGE, out
    assert "Traceback" not in out, out
    runs = dict(query(folder, "SELECT run_key, status FROM afr_runs"))
    assert "crashed" not in runs.values(), runs
    interrupted = {key for key, status in runs.items() if status == "running"}
    charges = dict(query(folder, "SELECT run_key, status FROM afr_charges"))
    # An interrupted run is reserved, never settled: its charge is held for the re-run, not spent on it.
    assert {key for key, status in charges.items() if status == "reserved"} == interrupted, charges
    assert query(folder, "SELECT status FROM afr_campaigns") == [("interrupted",)]
    return interrupted


def interrupt_until_in_flight(folder: Path, stage: str, signals: list[signal.Signals]) -> None:
    """Stop the campaign (and its resumes) with ``signals`` until a stop leaves a run in flight: a run takes
    a fraction of a second, so a signal may land between two runs of a loaded machine (a stop that is checked
    too, then resumed like any other)."""
    for _ in range(3):
        if check_interrupted(folder, interrupt(folder, stage, signals)):
            return
    raise AssertionError(f"three stops during the {stage} stage left no run in flight")


def test_double_sigint_during_the_search_then_resume_equals_an_uninterrupted_campaign(
    tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    interrupt_until_in_flight(tmp_path, "search", [signal.SIGINT, signal.SIGINT])
    resumed = run_to_end(tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert content(tmp_path) == uninterrupted


def test_sigterm_and_sigints_during_the_finals_then_resume_equals_an_uninterrupted_campaign(
    tmp_path: Path, uninterrupted: dict[str, Any]
) -> None:
    interrupt_until_in_flight(tmp_path, "final", [signal.SIGTERM, signal.SIGINT, signal.SIGINT])
    resumed = run_to_end(tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert content(tmp_path) == uninterrupted
