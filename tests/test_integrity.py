"""Operations, as a user meets them: one process per campaign (the lock names its owner, stale locks are
recovered), ledgers that are checked and never silently rebuilt, and data files checked before training."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from afr.data import cached_md5, md5_cache_file
from afr.errors import DataError
from afr.ledger import (
    LOCK_FILE,
    SCHEMA_VERSION,
    CampaignLockedError,
    Ledger,
    LedgerError,
    campaign_lock,
)
from tests import _data

HD = "heart_disease"
CLEVELAND = "processed.cleveland.data"
CAMPAIGN = ["agent=evolve", "profile=synthetic", "campaign.runs_per_arm=2"]
SMALL = ["profile.rounds=2", "profile.local_steps=5", "campaign.finals=false"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The md5 cache goes to the user cache folder: keep this test's entries out of the real one.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def afr_run(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "afr.run", *args],
        cwd=tmp_path,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one ``error:`` line of a failed command (a ``fix:`` line may follow it), with no traceback."""
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "fix:" in done.stderr
    return errors[0]


def dead_pid() -> int:
    """The pid of a process that has ended (reaped, so the number is free)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# --- the campaign lock ----------------------------------------------------------------------------


def test_second_process_on_a_running_campaign_exits_naming_the_owner(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    with campaign_lock(directory):  # this test process is the running campaign
        done = afr_run(tmp_path, *CAMPAIGN, f"campaign.dir={directory}")
    assert done.returncode != 0
    line = error_line(done)
    assert f"pid {os.getpid()} on host {socket.gethostname()} since " in line, line
    assert "already running" in line
    assert f"kill {os.getpid()}" in done.stderr, "the fix names the process to stop"
    assert not (directory / "ledger.db").exists(), "the second process stops before it opens the ledger"
    assert not (directory / LOCK_FILE).exists(), "the owner removes its lock file when it releases it"


def test_lock_held_by_another_process_is_refused(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from afr.ledger import campaign_lock; "
            f"lock = campaign_lock({str(tmp_path)!r}); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(CampaignLockedError) as info:
            campaign_lock(tmp_path)
        assert f"pid {holder.pid} on host {socket.gethostname()}" in info.value.what
    finally:
        holder.communicate("", timeout=60)
    with campaign_lock(tmp_path) as lock:  # released when its owner exits
        assert lock.recovered is None, "a clean release leaves nothing to recover"


def test_stale_lock_of_a_killed_campaign_is_recovered(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    gone = dead_pid()
    stale = {"pid": gone, "host": socket.gethostname(), "since": "2026-01-01 00:00:00 UTC", "command": "x"}
    (directory / LOCK_FILE).write_text(json.dumps(stale))  # as a SIGKILLed owner leaves it
    done = afr_run(tmp_path, *CAMPAIGN, *SMALL, f"campaign.dir={directory}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"recovered the stale campaign lock of pid {gone} on host {socket.gethostname()}" in done.stdout
    assert not (directory / LOCK_FILE).exists()
    with Ledger.for_campaign_dir(directory) as ledger:  # Optuna's tables share the file and pass the check
        assert {"studies", "trials", "afr_runs"} <= set(ledger.table_names())
        assert len(ledger.runs(1)) == 4


def test_lock_kept_by_a_child_of_a_dead_owner_is_broken(tmp_path: Path) -> None:
    # A process that inherited the locked descriptor outlives the owner recorded in the file.
    gone = dead_pid()
    owner = {"pid": gone, "host": socket.gethostname(), "since": "2026-01-01 00:00:00 UTC"}
    script = textwrap.dedent(
        f"""
        import fcntl, json, os, sys
        fd = os.open({str(tmp_path / LOCK_FILE)!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, json.dumps({owner!r}).encode())
        print("held", flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with campaign_lock(tmp_path) as lock:
            assert lock.recovered is not None and lock.recovered.pid == gone
            assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    finally:
        child.communicate("", timeout=60)


def test_live_owner_on_this_host_is_never_broken(tmp_path: Path) -> None:
    with campaign_lock(tmp_path), pytest.raises(CampaignLockedError, match=f"pid {os.getpid()} "):
        campaign_lock(tmp_path)
    campaign_lock(tmp_path).release()


# --- ledger integrity -----------------------------------------------------------------------------


def _tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


def test_new_ledger_records_its_schema_version(tmp_path: Path) -> None:
    with Ledger.for_campaign_dir(tmp_path) as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        assert db.execute("SELECT value FROM afr_meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )


def test_dropped_table_is_refused_and_never_recreated(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    with Ledger.for_campaign_dir(directory) as ledger:
        cid = ledger.start_campaign("synthetic-evolve-seed0", "synthetic", "evolve", {})
        ledger.finish_campaign(cid)
    with sqlite3.connect(directory / "ledger.db") as db:
        db.execute("DROP TABLE afr_runs")
    before = _tables(directory / "ledger.db")
    done = afr_run(tmp_path, *CAMPAIGN, f"campaign.dir={directory}")
    assert done.returncode != 0
    line = error_line(done)
    assert "afr_runs" in line and "missing" in line and str(directory / "ledger.db") in line, line
    assert _tables(directory / "ledger.db") == before, "nothing was recreated (nor Optuna's study added)"
    with pytest.raises(LedgerError, match="afr_runs"):
        Ledger.for_campaign_dir(directory)


def test_garbage_ledger_file_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    garbage = b"this is not a database\n" * 300
    (directory / "ledger.db").write_bytes(garbage)
    done = afr_run(tmp_path, *CAMPAIGN, f"campaign.dir={directory}")
    assert done.returncode != 0
    assert "not an SQLite database" in error_line(done)
    assert (directory / "ledger.db").read_bytes() == garbage, "the file is left as it was"


def test_truncated_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger(f"sqlite:///{path}") as ledger:
        cid = ledger.start_campaign("c", "synthetic", "evolve", {"pad": "x" * 4000})
        for i in range(40):
            ledger.add_candidate(cid, arm="agent", agent="a", source="y" * 4000, diff="", ast_hash=str(i))
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(LedgerError, match="damaged or truncated") as info:
        Ledger(f"sqlite:///{path}")
    assert str(path) in info.value.message and info.value.fix
    with open(path, "r+b") as fh:
        fh.truncate(50)
    with pytest.raises(LedgerError, match="truncated"):
        Ledger(f"sqlite:///{path}")


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE afr_meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(LedgerError, match=f"schema version {SCHEMA_VERSION + 1}") as info:
        Ledger(f"sqlite:///{path}")
    assert "upgrade AFR" in (info.value.fix or "")


def test_ledger_from_before_versions_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger(f"sqlite:///{path}") as ledger:
        cid = ledger.start_campaign("c", "synthetic", "evolve", {})
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE afr_meta")  # as every ledger written before the schema was versioned
    with Ledger(f"sqlite:///{path}") as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
        assert ledger.campaign(cid).name == "c"


# --- data integrity -------------------------------------------------------------------------------


@pytest.fixture
def heart_copy(tmp_path: Path, shared_data: Path) -> Path:
    """A private, writable copy of the real heart_disease files; returns the data dir holding it."""
    shutil.copytree(shared_data / HD, tmp_path / "data" / HD)
    return tmp_path / "data"


def _tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[100] = ord("9") if data[100] != ord("9") else ord("8")  # one byte, same size
    path.write_bytes(bytes(data))


def test_tampered_data_file_stops_a_campaign_before_training(tmp_path: Path, heart_copy: Path) -> None:
    assert _data.require(HD, heart_copy)  # intact: fine
    _tamper(heart_copy / HD / CLEVELAND)
    directory = tmp_path / "c"
    done = afr_run(
        tmp_path,
        "agent=evolve",
        "profile=heart_disease",
        f"data_dir={heart_copy}",
        f"campaign.dir={directory}",
    )
    assert done.returncode != 0
    line = error_line(done)
    assert CLEVELAND in line and "altered or corrupted" in line, line
    assert f"afr data verify {HD}" in done.stderr and f"afr data fetch {HD}" in done.stderr
    assert not directory.exists(), "nothing was started"


def test_tampered_data_file_stops_a_single_run_before_training(tmp_path: Path, heart_copy: Path) -> None:
    _tamper(heart_copy / HD / CLEVELAND)
    done = afr_run(tmp_path, "profile=heart_disease", "recipe=fedavg", "seeds=1", f"data_dir={heart_copy}")
    assert done.returncode != 0
    assert CLEVELAND in error_line(done)
    assert "seed " not in done.stdout, "no seed was trained"


def test_empty_data_file_is_one_clear_error(heart_copy: Path) -> None:
    (heart_copy / HD / CLEVELAND).write_bytes(b"")
    with pytest.raises(DataError, match="is empty") as info:
        _data.require(HD, heart_copy)
    assert str(heart_copy / HD / CLEVELAND) in info.value.message
    assert f"afr data verify {HD} --data-dir {heart_copy}" in (info.value.fix or "")


def test_md5s_are_cached_outside_the_data_dir(heart_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = heart_copy / HD
    before = sorted(p.name for p in folder.iterdir())
    _data.require(HD, heart_copy)
    assert sorted(p.name for p in folder.iterdir()) == before, "nothing is written into the data folder"
    cache = json.loads(md5_cache_file().read_text())
    assert str((folder / CLEVELAND).resolve()) in cache

    hashed: list[Path] = []
    import afr.data._md5 as fetch_module

    real = fetch_module.file_md5
    monkeypatch.setattr(fetch_module, "file_md5", lambda p: hashed.append(p) or real(p))
    _data.require(HD, heart_copy)
    assert hashed == [], "unchanged files are not read again"
    _tamper(folder / CLEVELAND)
    with pytest.raises(DataError, match="altered"):
        _data.require(HD, heart_copy)
    assert hashed == [(folder / CLEVELAND).resolve()], "only the changed file is hashed again"
    assert cached_md5(folder / "processed.va.data") == "4249d03ca7711e84f4444768c9426170"
