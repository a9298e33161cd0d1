"""``campaign.storage=<SQLAlchemy URL>``: the ledger and both Optuna studies in one database.

A real small campaign runs on a throwaway PostgreSQL server (tests/_postgres.py) end to end; its report is
then read from the URL and checked against the ledger's rows, queried with plain SQL. ``afr evaluate`` puts
a second campaign in the same database, and ``afr table`` picks campaigns out of it by name. A bad URL is
one line and a non-zero exit before anything is made. (The default, ``<campaign dir>/ledger.db``, is what
every other campaign test runs on.)
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa

from afr.campaign import archive_failed_attempt
from afr.cli import main as afr_main
from afr.errors import ConfigError
from afr.ledger import (
    LEDGER_FILE,
    Ledger,
    LedgerError,
    candidate_name,
    check_storage_url,
    find_campaign,
    open_ledger,
)

REPO = Path(__file__).resolve().parents[1]
SMALL = [
    "profile=synthetic",
    "profile.rounds=2",
    "profile.local_steps=5",
]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def _afr(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


def _campaign_args(url: str, root: Path) -> list[str]:
    return [
        "agent=evolve",
        *SMALL,
        "campaign.runs_per_arm=2",
        "campaign.top_k=1",
        "campaign.final_seeds=2",
        "campaign.heldout_seeds=1",
        "campaign.name=pg",
        f"campaign.dir={root / 'campaign'}",
        # Quoted for Hydra: the URL's query (?host=...&port=...) holds '='.
        f"campaign.storage='{url}'",
        f"hydra.run.dir={root / 'hydra'}",
    ]


@pytest.fixture(scope="module")
def pg_campaign(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A finished evolve campaign named ``pg`` whose records are in PostgreSQL; (URL, campaign dir)."""
    root = tmp_path_factory.mktemp("pg")
    folder = root / "campaign"
    done = _afr("afr.run", *_campaign_args(postgres_url, root), cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "records in postgresql+psycopg://" in done.stdout
    return postgres_url, folder


def _rows(url: str, query: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(query), params))
    finally:
        engine.dispose()


def _name(arm: str, candidate_id: int, meta: dict[str, Any] | str) -> str:
    fields = meta if isinstance(meta, dict) else json.loads(meta)
    return candidate_name(arm, fields.get("number", candidate_id), fields.get("proposal_key"))


def test_a_campaign_on_postgresql_end_to_end(pg_campaign: tuple[str, Path], tmp_path: Path, capsys) -> None:
    url, folder = pg_campaign
    # The records are in the database, the artifacts in the campaign folder.
    assert not (folder / LEDGER_FILE).exists(), "no SQLite ledger next to a campaign on a server database"
    assert (folder / "report.md").is_file() and (folder / "artifacts").is_dir()
    [(cid, status)] = _rows(url, "SELECT id, status FROM afr_campaigns WHERE name = 'pg'")
    assert status == "finished"

    # Both Optuna studies are in the same database, as "<campaign>/control" and "<campaign>/agent".
    studies = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage=url)}
    assert studies == {"pg/control": 2, "pg/agent": 2}

    # The report, read from the URL alone, in another folder.
    out = tmp_path / "elsewhere" / "report.md"
    assert afr_main(["report", url, "--campaign", "pg", "--output", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    assert text.startswith("# AFR campaign report: pg")

    # Its numbers are the ledger's rows: runs charged per account ...
    runs = _rows(
        url,
        "SELECT r.stage, c.arm, c.id, c.meta, c.score, r.evaluation, r.status FROM afr_runs r "
        "JOIN afr_candidates c ON c.id = r.candidate_id WHERE r.campaign_id = :cid",
        cid=cid,
    )
    charged = {"agent": 0, "control": 0, "finals": 0}
    for stage, arm, *_ in runs:
        charged["finals" if stage != "search" else arm] += 1
    assert charged == {"agent": 2, "control": 2, "finals": 10}
    for account, count in charged.items():
        assert re.search(rf"^\| {account} \| {count} \| ", text, re.M), f"{account}: {count} runs charged"
    # ... and each finalist's search score and test mean over its final seeds.
    finalists = re.findall(r"^\| ((?:agent|baseline|control)#\d+) \| ([0-9.]+) \| ([0-9.]+) ± ", text, re.M)
    assert len(finalists) == 2, text
    for name, shown_score, shown_test in finalists:
        mine = [r for r in runs if _name(r[1], r[2], r[3]) == name]
        assert f"{mine[0][4]:.4f}" == shown_score
        tests = [
            (r[5] if isinstance(r[5], dict) else json.loads(r[5]))["test"]["mean"]
            for r in mine
            if r[0] == "final"
        ]
        assert len(tests) == 2 and f"{statistics.fmean(tests):.4f}" == shown_test


def test_the_same_command_resumes_from_the_database(pg_campaign: tuple[str, Path]) -> None:
    url, folder = pg_campaign
    before = _rows(url, "SELECT count(*) FROM afr_runs")[0][0]
    done = _afr("afr.run", *_campaign_args(url, folder.parent), cwd=folder.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[  agent] run" not in done.stdout, "a finished campaign runs nothing again"
    assert _rows(url, "SELECT count(*) FROM afr_runs")[0][0] == before
    assert _rows(url, "SELECT count(*) FROM afr_campaigns WHERE name = 'pg'")[0][0] == 1


def test_evaluate_and_table_take_the_url_and_a_campaign_name(
    pg_campaign: tuple[str, Path], tmp_path: Path, capsys
) -> None:
    url, _ = pg_campaign
    done = _afr(
        "afr.evaluate",
        "recipe=fedprox",
        *SMALL,
        "campaign.runs_per_arm=1",
        "campaign.finals=false",
        "campaign.name=ev",
        f"campaign.dir={tmp_path / 'ev'}",
        f"campaign.storage='{url}'",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    names = {name for (name,) in _rows(url, "SELECT name FROM afr_campaigns")}
    assert names == {"pg", "ev"}, "two campaigns side by side in one database"
    assert not (tmp_path / "ev" / LEDGER_FILE).exists()

    # The database now holds two campaigns: the report needs the name, and says which there are.
    assert afr_main(["report", url, "--output", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err
    assert "holds 2 campaigns" in err and "'ev'" in err and "--campaign NAME" in err
    assert not (tmp_path / "r.md").exists()
    assert afr_main(["report", url, "--campaign", "ev", "--output", str(tmp_path / "r.md")]) == 0
    assert (tmp_path / "r.md").read_text().startswith("# AFR campaign report: ev")

    capsys.readouterr()
    assert afr_main(["table", url, "--campaign", "pg"]) == 0
    table = capsys.readouterr().out
    assert "(campaign 'pg')" in table and "(campaign 'ev')" not in table
    proposed = re.search(r"^\| synthetic \| (\d+) \|", table, re.M)
    assert proposed is not None and int(proposed.group(1)) == len(
        _rows(
            url,
            "SELECT c.id FROM afr_candidates c JOIN afr_campaigns k ON k.id = c.campaign_id "
            "WHERE k.name = 'pg' AND c.arm = 'agent'",
        )  # fmt: skip
    )
    assert afr_main(["table", url, "--campaign", "nope"]) == 2
    assert "no campaign named 'nope'" in capsys.readouterr().err


def test_a_bad_url_is_one_line_before_anything_is_made(tmp_path: Path) -> None:
    done = _afr(
        "afr.run",
        "agent=evolve",
        *SMALL,
        f"campaign.dir={tmp_path / 'c'}",
        "campaign.storage=nosuchdb://user@host/db",
        f"hydra.run.dir={tmp_path / 'hydra'}",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert (
        lines[0]
        == "error: unknown database driver 'nosuchdb' in nosuchdb://user@host/db (in campaign.storage=)"
    )
    assert lines[1].startswith("  fix: give a SQLAlchemy URL such as") and len(lines) == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "c").exists() and not (tmp_path / "hydra").exists(), "nothing was made"


def test_check_storage_url_says_what_is_wrong(tmp_path: Path, postgres_url: str) -> None:
    cases = {
        "not a url": "is not a database URL",
        "postgresql+nodriver://u@h/db": "unknown database driver 'postgresql+nodriver'",
        # a port nothing listens on (the test server has no TCP at all): refused at once
        "postgresql+psycopg://afr@127.0.0.1:1/afr": "cannot connect to postgresql+psycopg://afr@127.0.0.1:1/afr",
        "postgresql+psycopg://afr:secret@127.0.0.1:1/afr": "cannot connect to postgresql+psycopg://afr:***@",
        f"sqlite:///{tmp_path}/missing/ledger.db": "does not exist",
        "sqlite://": "is not a SQLite file",
    }
    for url, said in cases.items():
        with pytest.raises(ConfigError) as caught:
            check_storage_url(url)
        assert said in caught.value.what, (url, caught.value.what)
        assert "secret" not in caught.value.message
    assert check_storage_url(postgres_url) == postgres_url
    assert check_storage_url(f"sqlite:///{tmp_path}/x.db") == f"sqlite:///{tmp_path}/x.db"
    assert not (tmp_path / "x.db").exists(), "the check creates no file"


def _new_database(url: str, name: str) -> str:
    """A new empty database on the test server; its URL."""
    engine = sa.create_engine(url.replace("/afr?", "/postgres?"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        engine.dispose()
    return url.replace("/afr?", f"/{name}?")


def test_readers_never_create_a_ledger(postgres_url: str, tmp_path: Path) -> None:
    # An empty database (no afr_ tables): the report refuses it and leaves it empty.
    empty = _new_database(postgres_url, "empty")
    with pytest.raises(LedgerError, match="holds no AFR ledger"):
        open_ledger(empty)
    assert _rows(empty, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []
    # A writer (the campaign) does create it.
    Ledger(empty).close()
    assert _rows(empty, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'afr_%'")[0][0] > 0


def test_a_failed_campaign_in_a_database_is_archived_under_a_new_name(
    postgres_url: str, tmp_path: Path
) -> None:
    url = _new_database(postgres_url, "retry")
    with Ledger(url) as ledger:
        cid = ledger.start_campaign("broken", "synthetic", "evolve", {"x": 1})
        ledger.finish_campaign(cid, "failed")
        ledger.start_campaign("fine", "synthetic", "evolve", {"x": 1})
    for arm in ("control", "agent"):
        study = optuna.create_study(storage=url, study_name=f"broken/{arm}")
        study.add_trial(optuna.trial.create_trial(value=0.5))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "report.md").write_text("attempt 1")

    assert archive_failed_attempt(tmp_path / "fine", "fine", storage=url) is None
    assert not (tmp_path / "fine").exists(), "a campaign that did not fail: nothing made or moved"
    target = archive_failed_attempt(tmp_path / "broken", "broken", storage=url)
    assert target == (tmp_path / "broken" / "attempts" / "1").resolve()
    assert (target / "report.md").read_text() == "attempt 1" and not (
        tmp_path / "broken" / "report.md"
    ).exists()
    with Ledger(url) as ledger:
        assert [(c.name, c.status) for c in ledger.campaigns()] == [
            ("broken/attempt-1", "failed"),
            ("fine", "running"),
        ]
        assert ledger.campaign_by_name("broken") is None, "the name is free for attempt 2"
    studies = {s.study_name: s.n_trials for s in optuna.get_all_study_summaries(storage=url)}
    assert studies == {"broken/attempt-1/control": 1, "broken/attempt-1/agent": 1}
    # the archived attempt reads back under its new name (as `afr report <url> --campaign ...` finds it)
    with open_ledger(url) as ledger:
        assert find_campaign(ledger, "broken/attempt-1").status == "failed"
