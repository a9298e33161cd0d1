"""Environment failures, as a user meets them: a full disk, a read-only campaign folder, a campaign name too
long for a folder. Each is one ``error:`` line naming what failed, where, and the fix; the exit code is
non-zero; the ledger is left consistent (not stuck ``running`` when it can still be written) and the same
command resumes once the cause is gone.

Real file systems, no mocks: ``unshare -Urm`` (a user and mount namespace; works unprivileged and as root,
where ``chmod`` alone would not stop a write) mounts a tiny tmpfs for "disk full" and a read-only bind mount
for "read-only". The campaign is ``profile=synthetic`` (no data files), a few tiny runs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAMPAIGN = [
    "agent=evolve",
    "profile=synthetic",
    "profile.rounds=2",
    "profile.local_steps=5",
    "campaign.finals=false",
    "campaign.workers=1",
    "hydra.run.dir=hydra",
]


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "true"], capture_output=True)
    return probe.returncode == 0


needs_unshare = pytest.mark.skipif(
    not _unshare_works(), reason="unshare -Urm (user + mount namespace) is not available here"
)


def command(*args: str) -> str:
    """The shell form of ``python -m afr.run <args>`` (this interpreter, this checkout)."""
    return shlex.join([sys.executable, "-m", "afr.run", *CAMPAIGN, *args])


def in_namespace(tmp_path: Path, script: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (bash) in a fresh user + mount namespace, from ``tmp_path``."""
    path = tmp_path / "script.sh"
    path.write_text("set -u\n" + textwrap.dedent(script))
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    return subprocess.run(
        ["unshare", "-Urm", "bash", str(path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in order: the markers cut it per command
        text=True,
        timeout=timeout,
    )


def sections(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """The script's output cut at its ``=== name rc=N`` markers: name -> output before the marker."""
    out: dict[str, str] = {}
    lines: list[str] = []
    for line in done.stdout.splitlines():
        if line.startswith("=== "):
            out[line[4:]] = "\n".join(lines)
            lines = []
        else:
            lines.append(line)
    return out


def one_error(output: str) -> str:
    """The one ``error:`` line of a failed command (its ``fix:`` line follows), with no traceback."""
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "\n  fix: " in output, output
    return errors[0]


def ledger_state(directory: Path) -> tuple[str, dict[str, int]]:
    """The campaign's status and its runs counted by status (read-only: the file is not touched)."""
    db = sqlite3.connect(f"file:{directory / 'ledger.db'}?mode=ro", uri=True)
    try:
        (status,) = db.execute("SELECT status FROM afr_campaigns").fetchone()
        runs = dict(db.execute("SELECT status, count(*) FROM afr_runs GROUP BY status").fetchall())
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    return status, runs


@needs_unshare
def test_full_disk_under_the_weights_is_one_line_and_the_campaign_resumes(tmp_path: Path) -> None:
    """The campaign's artifacts folder is a full tmpfs (the ledger has room): the first run's weights cannot
    be written. One line, exit != 0, the campaign recorded ``interrupted`` (not ``running``), the run left
    open rather than charged as the candidate's crash; once there is room the same command finishes."""
    directory = tmp_path / "c"
    artifacts = directory / "artifacts"
    artifacts.mkdir(parents=True)
    done = in_namespace(
        tmp_path,
        f"""
        mount -t tmpfs -o size=16k tmpfs {artifacts}
        dd if=/dev/zero of={artifacts}/filler bs=4k count=64 2>/dev/null
        {command("campaign.runs_per_arm=2", f"campaign.dir={directory}")}
        echo "=== first rc=$?"
        mkdir {tmp_path}/failed && cp {directory}/ledger.db* {tmp_path}/failed/
        rm {artifacts}/filler && mount -o remount,size=8m {artifacts}
        {command("campaign.runs_per_arm=2", f"campaign.dir={directory}")}
        echo "=== resumed rc=$?"
        """,
    )
    parts = sections(done)
    assert "first rc=0" not in parts, done.stdout
    first = next(v for k, v in parts.items() if k.startswith("first"))
    line = one_error(first)
    assert "disk is full" in line and str(directory) in line, line
    assert "free space" in first
    status, runs = ledger_state(tmp_path / "failed")
    assert status == "interrupted", (status, runs)
    assert runs.get("crashed", 0) == 0, f"a full disk is not the candidate's crash: {runs}"

    resumed = next(v for k, v in parts.items() if k.startswith("resumed"))
    assert "resumed rc=0" in parts and "error:" not in resumed, resumed
    status, runs = ledger_state(directory)
    assert status == "finished" and runs == {"ok": 4}, (status, runs)


@needs_unshare
def test_full_disk_under_the_ledger_is_one_line_and_the_campaign_resumes(tmp_path: Path) -> None:
    """The whole campaign folder on a 1 MB tmpfs: SQLite's "database or disk is full" (or a weights file)
    stops the campaign with one line; the ledger is intact (not ``running`` unless it could not be written
    at all) and, once the disk is larger, the same command finishes the campaign without a crashed run."""
    directory = tmp_path / "c"
    directory.mkdir()
    run = command("campaign.runs_per_arm=4", f"campaign.dir={directory}")
    done = in_namespace(
        tmp_path,
        f"""
        mount -t tmpfs -o size=1m tmpfs {directory}
        {run}
        echo "=== first rc=$?"
        mkdir {tmp_path}/failed && cp {directory}/ledger.db* {tmp_path}/failed/
        mount -o remount,size=64m {directory}
        {run}
        echo "=== resumed rc=$?"
        mkdir {tmp_path}/final && cp {directory}/ledger.db* {tmp_path}/final/
        """,
    )
    parts = sections(done)
    assert "first rc=0" not in parts, done.stdout
    first = next(v for k, v in parts.items() if k.startswith("first"))
    line = one_error(first)
    assert "disk is full" in line and str(directory) in line, line
    # Intact, and either marked or -- when not even that write fit -- left as SQLite rolled it back.
    assert ledger_state(tmp_path / "failed")[0] in ("interrupted", "running")
    resumed = next(v for k, v in parts.items() if k.startswith("resumed"))
    assert "resumed rc=0" in parts and "error:" not in resumed, resumed
    status, runs = ledger_state(tmp_path / "final")  # the tmpfs went with the namespace: its copy
    assert status == "finished" and runs == {"ok": 8}, (status, runs)


@needs_unshare
def test_read_only_campaign_folder_is_one_line_and_nothing_changes(tmp_path: Path) -> None:
    """A finished campaign's folder mounted read-only: resuming it says "read-only" and the folder, and
    leaves the ledger byte for byte as it was; a new campaign under a read-only folder says the same."""
    directory = tmp_path / "c"
    locked = tmp_path / "ro"
    locked.mkdir()
    run = command("campaign.runs_per_arm=1", f"campaign.dir={directory}")
    done = in_namespace(
        tmp_path,
        f"""
        {run}
        echo "=== made rc=$?"
        sha256sum {directory}/ledger.db > {tmp_path}/before.sha
        mount --bind {directory} {directory} && mount -o remount,bind,ro {directory}
        mount --bind {locked} {locked} && mount -o remount,bind,ro {locked}
        {run}
        echo "=== resume rc=$?"
        {command("campaign.runs_per_arm=1", f"campaign.dir={locked}/new")}
        echo "=== new rc=$?"
        sha256sum {directory}/ledger.db > {tmp_path}/after.sha
        """,
    )
    parts = sections(done)
    assert "made rc=0" in parts, done.stdout
    for name, folder in (("resume", directory), ("new", locked / "new")):
        output = next(v for k, v in parts.items() if k.startswith(name))
        assert f"{name} rc=0" not in parts, output
        line = one_error(output)
        assert "read-only" in line and str(folder) in line, line
        assert "writable campaign.dir" in output, output
    assert (tmp_path / "before.sha").read_text() == (tmp_path / "after.sha").read_text()
    assert ledger_state(directory)[0] == "finished"
    assert not (locked / "new").exists()


def test_campaign_name_too_long_is_refused_before_any_folder(tmp_path: Path) -> None:
    """A 300-character campaign.name: one line stating the limit, exit 2, no folder made."""
    (tmp_path / "notes.txt").write_text("a user's folder is not empty\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "afr.run", *CAMPAIGN, "campaign.name=" + "x" * 300],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    line = one_error(done.stdout + done.stderr)
    assert "campaign.name" in line and "300 bytes" in line and "255" in line, line
    assert "shorter campaign.name" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"], "no folder was made"


def test_storage_error_reads_errno_and_sqlite_messages() -> None:
    """The one translation: errno values and SQLite's words, through causes and ``.orig`` wrappers."""
    import errno

    from sqlalchemy.exc import OperationalError

    from afr.errors import storage_error

    full = storage_error(OSError(errno.ENOSPC, "No space left on device", "/x/ledger.db"))
    assert full is not None and "disk is full" in full.what and full.where == "/x/ledger.db"
    assert "free space" in (full.fix or "")
    quota = storage_error(OSError(errno.EDQUOT, "Disk quota exceeded"), where="/q")
    assert quota is not None and "quota" in quota.what and quota.where == "/q"
    read_only = storage_error(OSError(errno.EROFS, "Read-only file system", "/r"))
    assert read_only is not None and "writable campaign.dir" in (read_only.fix or "")
    assert "shorter campaign.name" in (storage_error(OSError(errno.ENAMETOOLONG, "long")).fix or "")
    wrapped = OperationalError("INSERT ...", {}, sqlite3.OperationalError("database or disk is full"))
    try:
        try:
            raise wrapped
        except OperationalError as exc:
            raise RuntimeError("optuna: An exception is raised during the commit") from exc
    except RuntimeError as outer:
        found = storage_error(outer, where="/c")
    assert found is not None and "disk is full" in found.what and found.where == "/c"
    readonly = storage_error(sqlite3.OperationalError("attempt to write a readonly database"))
    assert readonly is not None and "read-only" in readonly.what
    assert storage_error(sqlite3.OperationalError("database is locked")) is None
    assert storage_error(OSError(errno.ECONNREFUSED, "refused")) is None
    assert storage_error(ValueError("x")) is None
