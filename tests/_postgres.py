"""A throwaway PostgreSQL cluster for the tests: ``initdb`` in a temporary folder, a server on a Unix socket
in that folder (no TCP port: nothing to collide with), stopped and removed at the end.

The server binaries refuse to run as root, so under root (CI) they run as the ``postgres`` user through
``runuser``; otherwise they run as the current user. Missing binaries are a skip naming the package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PG_BIN", "postgres_missing", "throwaway_postgres"]

PG_BIN = Path(os.environ.get("AFR_PG_BIN", "/usr/lib/postgresql/15/bin"))
"""Where PostgreSQL's server binaries are (Debian's postgresql-15 keeps them off PATH)."""

PORT = 5432  # names the socket file only (listen_addresses is empty: no TCP)
USER = "afr"
DATABASE = "afr"


def postgres_missing() -> str | None:
    """Why no throwaway cluster can be made here (None: it can)."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).is_file():
            return f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql-15)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root needs runuser (util-linux) to start PostgreSQL as the postgres user"
    return None


def _as_server_user(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(
        _as_server_user(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A fresh cluster with an empty database; yields its SQLAlchemy URL (psycopg 3 over the Unix socket)."""
    # Under /tmp and world-traversable: pytest's own tmp folders may be 0700 root, out of the server's reach.
    folder = Path(tempfile.mkdtemp(prefix="afr-pg-", dir="/tmp"))
    folder.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    started = False
    try:
        _run([str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "--no-sync"], "initdb")
        options = f"-k {folder} -p {PORT} -c listen_addresses='' -c fsync=off"
        log = str(folder / "log")
        _run(
            [str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", log, "-w", "start"], "pg_ctl start"
        )
        started = True
        createdb = str(PG_BIN / "createdb") if (PG_BIN / "createdb").is_file() else "createdb"
        _run([createdb, "-h", str(folder), "-p", str(PORT), "-U", USER, DATABASE], "createdb")
        yield f"postgresql+psycopg://{USER}@/{DATABASE}?host={folder}&port={PORT}"
    finally:
        if started:
            subprocess.run(
                _as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=120,
            )
        shutil.rmtree(folder, ignore_errors=True)
