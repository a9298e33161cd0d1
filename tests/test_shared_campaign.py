"""Several processes on one campaign (``campaign.shared``, ``afr worker``), driven as a user would.

The first process (``python -m afr.run ... campaign.shared=true``) starts the campaign and runs its baseline;
two ``afr worker <URL> <name>`` processes join it (a PostgreSQL server, as several machines would share);
one of them is killed (SIGKILL) while it holds a run.
The ledger must then show an exact accountant (each arm charged exactly its budget, every charge one
run), no run recorded twice, distinct control trials, nothing left running or reserved, the killed
worker's run taken over under its own run key, and the finals and report written by the first process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.pool import NullPool

from afr.campaign import join_settings
from afr.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600
RUNS = 6


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of the campaign's database (SQLite or PostgreSQL); none while its tables are not there yet."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    except (OperationalError, ProgrammingError):
        return []
    finally:
        engine.dispose()


def worker_of(meta: Any) -> str | None:
    return (meta if isinstance(meta, dict) else json.loads(meta or "{}")).get("worker")


def start(command: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, cwd=cwd, env=environment(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def wait_for(condition, what: str, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        assert all(p.poll() in (None, 0) for p in procs), f"a process ended early while waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A shared campaign searched by three processes, one of them killed while it holds a run, on a throwaway
    PostgreSQL server (what several machines share; the same path on SQLite, one machine, is the local-workers
    test below)."""
    from tests._postgres import postgres_missing, throwaway_postgres

    if (missing := postgres_missing()) is not None:
        pytest.skip(missing)
    folder = tmp_path_factory.mktemp("shared")
    (folder / "campaign").mkdir()
    with throwaway_postgres() as url:
        yield run_shared(folder, url)


def run_shared(folder: Path, url: str) -> dict[str, Any]:
    main = start(
        [
            sys.executable,
            "-m",
            "afr.run",
            "agent=evolve",
            "profile=synthetic",
            "profile.rounds=6",
            "profile.local_steps=50",
            f"campaign.runs_per_arm={RUNS}",
            "campaign.shared=true",
            f"campaign.storage='{url}'",
            "campaign.stale_after_s=3",
            "campaign.await_workers=2",
            "campaign.top_k=1",
            "campaign.final_seeds=2",
            "campaign.heldout_seeds=1",
            f"campaign.dir={folder / 'campaign'}",
            "campaign.name=shared",
            f"hydra.run.dir={folder / 'hydra'}",
        ],  # fmt: skip
        folder,
        folder / "main.log",
    )
    procs = [main]
    try:
        wait_for(lambda: query(url, "SELECT id FROM afr_campaigns"), "the campaign to be recorded", procs)
        workers = [
            start(
                [sys.executable, "-m", "afr.cli", "worker", url, "shared", "--dir", str(folder / f"w{n}")],
                folder,
                folder / f"w{n}.log",
            )
            for n in (1, 2)
        ]
        procs += workers
        # The worker to kill: once it holds a search run (its name is in its log once it joined).
        wait_for(lambda: "joins campaign" in (folder / "w1.log").read_text(), "worker 1 to join", procs)
        name = (folder / "w1.log").read_text().split("worker ", 1)[1].split(" joins", 1)[0]

        def held() -> set[int]:
            rows = query(url, "SELECT id, meta FROM afr_candidates WHERE status = 'running'")
            return {cid for cid, meta in rows if worker_of(meta) == name}

        wait_for(held, "worker 1 to hold a run", procs[:1] + workers[1:])
        os.killpg(workers[0].pid, signal.SIGKILL)
        killed_candidates = held()
        for proc in (main, workers[1]):
            proc.wait(timeout=TIMEOUT)
        workers[0].wait(timeout=60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return {
        "folder": folder,
        "url": url,
        "main": main.returncode,
        "survivor": workers[1].returncode,
        "killed": name,
        "killed_candidates": killed_candidates,
        "logs": {p.name: p.read_text() for p in folder.glob("*.log")},
    }


def test_three_processes_charge_exactly_the_budget_and_run_nothing_twice(shared) -> None:
    ledger, logs = shared["url"], shared["logs"]
    assert shared["main"] == 0 and shared["survivor"] == 0, logs
    assert query(ledger, "SELECT status FROM afr_campaigns") == [("finished",)]
    charges = query(ledger, "SELECT run_key, arm, runs, status, outcome FROM afr_charges")
    keys = Counter(key for key, *_ in charges)
    assert max(keys.values()) == 1
    for arm in ("agent", "control"):
        mine = [c for c in charges if c[1] == arm]
        assert sum(c[2] for c in mine) == RUNS, mine  # exactly the budget: not one run more, none lost
        assert all(c[3] == "settled" for c in mine), mine
        ran = [c for c in mine if c[4] != "cancelled"]
        assert all("/slot/" not in c[0] for c in ran), "every charge moved to its run"
        runs = query(
            ledger, f"SELECT run_key, status FROM afr_runs WHERE stage = 'search' AND run_key LIKE '{arm}/%'"
        )
        assert sorted(k for k, _ in runs) == sorted(c[0] for c in ran), "one recorded run per charge"
        assert all(status in ("ok", "failed", "timeout") for _, status in runs), runs
    assert query(ledger, "SELECT id FROM afr_candidates WHERE status = 'running'") == []


def test_the_work_was_shared_and_the_killed_workers_run_taken_over(shared) -> None:
    ledger = shared["url"]
    by_worker = Counter(
        worker_of(meta)
        for (meta,) in query(
            ledger,
            "SELECT c.meta FROM afr_runs r JOIN afr_candidates c ON c.id = r.candidate_id "
            "WHERE r.stage = 'search'",
        )
    )
    assert len([w for w in by_worker if w]) >= 2, by_worker  # at least the first process and the survivor ran
    for candidate in shared["killed_candidates"]:
        ((status, meta),) = query(ledger, f"SELECT status, meta FROM afr_candidates WHERE id = {candidate}")
        worker = worker_of(meta)
        assert status in ("ok", "failed") and worker != shared["killed"], (status, worker)
    assert "took over" in shared["logs"]["main.log"] + shared["logs"]["w2.log"]
    workers = dict(query(ledger, "SELECT name, status FROM afr_workers"))
    assert len(workers) == 3 and workers[shared["killed"]] == "active"  # it never said goodbye
    assert sum(status == "left" for status in workers.values()) == 2


def test_the_control_trials_are_distinct_and_the_finals_and_report_are_the_first_process(shared) -> None:
    ledger = shared["url"]
    scalars = [
        json.dumps(s if isinstance(s, dict) else json.loads(s), sort_keys=True)
        for (s,) in query(
            ledger, "SELECT scalars FROM afr_candidates WHERE arm = 'control' AND status != 'duplicate'"
        )
    ]
    assert len(scalars) >= RUNS and len(set(scalars)) == len(scalars)
    finals = query(ledger, "SELECT count(*) FROM afr_runs WHERE stage IN ('final', 'heldout')")[0][0]
    assert finals > 0 and (shared["folder"] / "campaign" / "report.md").is_file()
    assert "[ finals]" in shared["logs"]["main.log"] and "[ finals]" not in shared["logs"]["w2.log"]


def test_a_worker_cannot_join_what_was_not_shared_or_does_not_exist(tmp_path: Path) -> None:
    from afr.ledger import Ledger

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url) as ledger:
        ledger.start_campaign("alone", "synthetic", "evolve", {"shared": False})
    with pytest.raises(ConfigError, match="was started for one process"):
        join_settings(url, "alone", directory=tmp_path / "w", data_dir=None)
    with pytest.raises(ConfigError, match="no campaign named 'other'"):
        join_settings(url, "other", directory=tmp_path / "w", data_dir=None)
    done = subprocess.run(
        [sys.executable, "-m", "afr.cli", "worker", "not-a-url", "x"],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "error: 'not-a-url' is not a database URL (in afr worker)",
        "  fix: give the campaign's campaign.storage URL, e.g. postgresql+psycopg://user@host/db",
    ], lines


def test_campaign_workers_above_two_start_worker_processes_here(tmp_path: Path) -> None:
    """``campaign.workers=4``: the first process starts one more worker process (two runs per process at a
    time), waits until it has joined, and both search; the accountant stays exact."""
    import dataclasses

    from afr.campaign import Campaign, RunnerSettings
    from tests.test_campaign import conf, settings

    base = settings(tmp_path / "c", conf("agent", "evolve"), runs=4, finals=False)
    shared = dataclasses.replace(
        base,
        runner=RunnerSettings(workers=4, timeout_s=60),
        storage=f"sqlite:///{tmp_path / 'c' / 'ledger.db'}",
        shared=True,
        stale_after_s=5.0,
    )
    (tmp_path / "c").mkdir()
    lines: list[str] = []
    result = Campaign(shared, echo=lines.append).run()
    assert not result.failure
    assert "1 more worker process(es) search this campaign (logs in workers/)" in lines
    url = str(shared.storage)
    workers = dict(query(url, "SELECT name, status FROM afr_workers"))
    assert len(workers) == 2 and set(workers.values()) == {"left"}, workers
    assert "joins campaign" in (tmp_path / "c" / "workers" / "1.log").read_text()
    for arm in ("agent", "control"):
        charged = query(url, f"SELECT sum(runs) FROM afr_charges WHERE arm = '{arm}'")[0][0]
        recorded = query(
            url, f"SELECT count(*) FROM afr_runs WHERE stage = 'search' AND run_key LIKE '{arm}/%'"
        )
        assert charged == recorded[0][0] == 4


def test_more_than_two_workers_make_a_campaign_shared_and_racing_is_refused_with_it(tmp_path: Path) -> None:
    from tests._config import parsed_settings

    def parsed(*overrides: str):
        return parsed_settings(tmp_path, *overrides)

    assert not parsed().shared and "shared" not in parsed().as_config(), "one process: the config as before"
    many = parsed("campaign.workers=4")
    assert many.shared and many.as_config()["shared"] is True
    assert parsed("campaign.shared=true", "campaign.await_workers=3").await_workers == 3
    with pytest.raises(ConfigError, match="seed racing and a shared campaign do not go together"):
        parsed("campaign.workers=4", "campaign.racing.enabled=true")
    with pytest.raises(ConfigError, match="campaign.shared must be true or false"):
        parsed("campaign.shared=maybe")
