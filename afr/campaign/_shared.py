"""Several processes on one campaign: ``campaign.workers`` > 2 on one machine, ``afr worker`` on others.

A *shared* campaign lives in one database (``campaign.storage``; PostgreSQL across machines). The process
that started it runs the baseline first, then searches like every other worker, and alone runs the finals
and writes the report once no run is held any more. Each worker searches both arms, one run per arm at a
time, and keeps the accountant exact without any coordinator:

* **a budget slot before a proposal**: a worker reserves one run of the arm's budget under its own slot key
  (``control/slot/<worker>``) before it asks Optuna or its agent for a candidate, and moves that charge to
  the run's key once the candidate is claimed — no arm is ever charged beyond its budget, and a worker never
  proposes what it cannot run;
* **claims**: a candidate is marked ``running`` by its worker in one write (the ledger's
  ``claim_candidate``), so no run is executed twice;
* **heartbeats**: every worker writes one every few seconds (``afr_workers``); the candidates, trials and
  slots of a worker silent for ``campaign.stale_after_s`` are taken over: its run re-runs under the same
  run key (the charge it held, never a second one), its unclaimed slot is cancelled, a trial it asked and
  never proposed is failed;
* **the control as parallel Optuna workers**: TPE with constant liar, a sampler seed per worker.

A shared campaign is not reproducible run for run (which worker asks first depends on timing); a campaign
with one process is, and stays the default.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..ledger import Ledger

__all__ = ["Heartbeat", "LocalWorkers", "worker_name", "joined_campaign"]


def worker_name() -> str:
    """This process's name among a shared campaign's workers: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Heartbeat:
    """A daemon thread writing the worker's heartbeat every ``every_s`` seconds until :meth:`stop`."""

    def __init__(self, ledger: Ledger, campaign_id: int, name: str, every_s: float) -> None:
        self.ledger, self.campaign_id, self.name, self.every_s = ledger, campaign_id, name, every_s
        self._stop = threading.Event()
        ledger.join_worker(campaign_id, name)
        self._thread = threading.Thread(target=self._beat, name="afr-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.ledger.heartbeat(self.campaign_id, self.name)
            except Exception:  # noqa: BLE001 -- a missed beat is retried; the search reports real errors
                continue

    def stop(self, *, left: bool = True) -> None:
        """Stop beating; ``left``: tell the others this worker holds nothing any more (they need not wait
        for it to go stale)."""
        self._stop.set()
        self._thread.join(timeout=10)
        if left:
            with contextlib.suppress(Exception):  # then it goes stale instead
                self.ledger.heartbeat(self.campaign_id, self.name, status="left")


class LocalWorkers:
    """The extra worker processes ``campaign.workers`` > 2 starts on this machine (``afr worker``), each
    with two sandbox workers; their output goes to ``<campaign dir>/workers/<n>.log``."""

    def __init__(
        self, count: int, *, url: str, campaign: str, directory: Path, data_dir: str, runner: Any = None
    ) -> None:
        """``runner``: the first process's :class:`RunnerSettings`; its executor (local or Ray, with the
        cluster address and GPUs per run) is the workers' too."""
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        folder = directory / "workers"
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(1, count + 1):
            log = folder / f"{n}.log"
            command = [
                sys.executable, "-m", "afr.cli", "worker", url, campaign,
                "--dir", str(folder / str(n)), "--data-dir", data_dir, "--workers", "2",
            ]  # fmt: skip
            if runner is not None and runner.executor == "ray":
                command += ["--executor", "ray", "--num-gpus", str(runner.num_gpus)]
                command += ["--ray-address", runner.ray_address] if runner.ray_address else []
            with open(log, "ab") as out:
                self.procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))
            self.logs.append(log)

    def wait(self) -> list[str]:
        """Wait for every worker to end; one line per worker that failed (exit code and its log)."""
        problems = []
        for proc, log in zip(self.procs, self.logs, strict=True):
            code = proc.wait()
            if code not in (0, 130):
                problems.append(f"worker {proc.pid} exited {code} (see {log})")
        return problems

    def stop(self) -> None:
        """SIGTERM every worker still running (each stops as a campaign does: its runs stay reserved, and
        are taken over); wait for them."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def joined_campaign(url: str, campaign: str) -> Mapping[str, Any]:
    """The recorded config of the shared, running campaign ``campaign`` in the database at ``url`` (what a
    joining worker builds its settings from); one clear line if there is none to join."""
    with Ledger(url, create=False) as ledger:
        record = ledger.campaign_by_name(campaign)
    where = f"afr worker {url} {campaign}"
    if record is None:
        raise ConfigError(
            f"no campaign named {campaign!r} in that database",
            where=where,
            fix="start it first (python -m afr.run ... campaign.storage=<URL> campaign.shared=true), "
            "then join it with its campaign.name",
        )
    if not record.config.get("shared"):
        raise ConfigError(
            f"campaign {campaign!r} was started for one process, not as a shared campaign",
            where=where,
            fix="start a campaign with campaign.shared=true (or campaign.workers > 2) to let workers join",
        )
    if record.status != "running":
        raise ConfigError(
            f"campaign {campaign!r} is {record.status}, there is nothing to join",
            where=where,
            fix="join a campaign while its first process runs it",
        )
    return record.config
