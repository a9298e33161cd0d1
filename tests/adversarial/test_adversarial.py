"""Hostile candidate recipes: every one is rejected by the surface validator or contained at run time.

Each file in ``candidates/`` is a realistic attempt an adversarial or sloppy agent might make. It starts
with a header comment block::

    # ATTACK: <what it tries>                    (may span several ATTACK lines)
    # MUST: rejected:<rule>[,<rule>...]   or   contained:<status>[|<status>...]
    # WHY: <why it must fail>
    # CATEGORY: <group, for the report>
    # SANDBOX: <status>[|<status>...]          (optional, rejected files only: see below)

* static: ``rejected`` files fail validation with at least the listed rules; ``contained`` files pass it, so
  that the run-time guards (engine checks, sandbox limits) are what stops them;
* campaign: every file goes through ``CandidateRunner.propose``; rejected ones are stored as rejected with
  their rule ids and are never run; contained ones run once (sandboxed, concurrently) and must end with one
  of the listed statuses, recorded in the ledger as a failed candidate with a reason;
* defence in depth: rejected files with a ``SANDBOX`` line are also run *unvalidated* straight in the
  sandbox pool, which must still contain them (no file written, no secret seen);
* nothing outside the campaign directory changes: a canary directory with a sentinel file (the fixed path the
  candidates aim at) and the repository's working tree are compared before and after all runs, and the
  parent's ``OPENAI_API_KEY`` never reaches a child.

A candidate that exposes a hole in ``afr`` keeps its intended expectation; its failing test is marked
``xfail(strict=True)`` in :data:`HOLES` until the hole is fixed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from afr.budget import ArmBudget
from afr.campaign import CandidateRunner, RunnerSettings
from afr.engine import RunResult
from afr.ledger import RunRecord
from afr.profiles import load_profile_config, make_profile
from afr.sandbox import RunJob
from afr.surface import RULES, surface_table, validate

HERE = Path(__file__).resolve().parent
CANDIDATE_DIR = HERE / "candidates"
ROOT = HERE.parents[1]
PROFILE = "synthetic"
ROUNDS, LOCAL_STEPS = 2, 5
SETTINGS = RunnerSettings(workers=2, timeout_s=8, memory_mb=1536)
CANARY_DIR = Path("/tmp/afr_adversarial_canary")
SENTINEL = "sentinel"
ENV_KEY, ENV_VALUE = "OPENAI_API_KEY", "sk-test-canary"
CONTAINED_STATUSES = frozenset({"failed", "timeout", "memory", "crashed"})
SANDBOX_STATUSES = CONTAINED_STATUSES | {"ok"}
MIN_CANDIDATES = 45
MAX_TIMEOUT_CANDIDATES = 4  # each one costs the full timeout

# Holes found by this suite and fixed since (keep the mechanism: a new hole is listed here with a strict
# xfail until it is fixed): self-aliasing monkey-patches and self side channels (attribute assignment is
# now refused), extra forward passes through model.forward/children and numpy views (attributes refused;
# a module-wide forward guard at run time), ctx.global_params entries replaced (per-client copies plus a
# check), and the sandbox's 'memory' status (now a ledger run status).
HOLES: dict[str, str] = {}

_HEADER = re.compile(r"^#\s*([A-Z]+):\s?(.*)$")


@dataclass(frozen=True)
class Candidate:
    """One hostile candidate file and its parsed header."""

    path: Path
    source: str
    headers: dict[str, str]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def kind(self) -> str:
        return self.headers.get("MUST", "").partition(":")[0].strip()

    @property
    def expected(self) -> tuple[str, ...]:
        spec = self.headers.get("MUST", "").partition(":")[2]
        return tuple(p.strip() for p in re.split(r"[,|]", spec) if p.strip())

    @property
    def sandbox(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.headers.get("SANDBOX", "").split("|") if p.strip())


def _parse(path: Path) -> Candidate:
    source = path.read_text(encoding="utf-8")
    headers: dict[str, str] = {}
    for line in source.splitlines():
        if not line.startswith("#"):
            break
        match = _HEADER.match(line)
        if match:
            key, value = match.group(1), match.group(2).strip()
            headers[key] = f"{headers[key]} {value}" if key in headers else value
    return Candidate(path, source, headers)


_NUMBERED = re.compile(r"^(\d{2,3})_\w+\.py$")
"""Candidate files: a two- or three-digit number (unique), an underscore, a short name; 01-99 are the
original suite, 100 on are issue 14's cases (100-119 sandbox, 120-139 engine, 140-179 validator/parent)."""
CANDIDATES = [
    _parse(p)
    for p in sorted(
        (p for p in CANDIDATE_DIR.glob("*.py") if _NUMBERED.match(p.name)),
        key=lambda p: int(p.name.split("_")[0]),
    )
]
REJECTED = [c for c in CANDIDATES if c.kind == "rejected"]
CONTAINED = [c for c in CANDIDATES if c.kind == "contained"]
UNVALIDATED = [c for c in REJECTED if c.sandbox]


def _params(candidates: list[Candidate], *, hole_kind: str | None) -> list[Any]:
    """pytest params; a candidate listed in HOLES gets a strict xfail on the test that checks its MUST."""
    out = []
    for c in candidates:
        marks = []
        if c.name in HOLES and c.kind == hole_kind:
            marks.append(pytest.mark.xfail(strict=True, reason=HOLES[c.name]))
        out.append(pytest.param(c, id=c.name, marks=marks))
    return out


@pytest.fixture(scope="module")
def table():
    return surface_table(PROFILE)


# --- headers -----------------------------------------------------------------------------------------


def test_candidate_files_and_headers() -> None:
    names = [p.name for p in CANDIDATE_DIR.glob("*.py")]
    assert len(CANDIDATES) == len(names), f"candidate files must be named NN_short_name.py: {sorted(names)}"
    assert len(CANDIDATES) >= MIN_CANDIDATES, f"only {len(CANDIDATES)} candidates"
    numbers = [c.name.partition("_")[0] for c in CANDIDATES]
    assert len(set(numbers)) == len(numbers), "candidate numbers must be unique"
    assert all(n.isdigit() and len(n) in (2, 3) for n in numbers), f"numbers must be 2-3 digits: {numbers}"
    problems = []
    for c in CANDIDATES:
        missing = [k for k in ("ATTACK", "MUST", "WHY") if not c.headers.get(k)]
        if missing:
            problems.append(f"{c.name}: no {', '.join(missing)} header")
        if not c.source.startswith("# ruff: noqa\n"):
            problems.append(f"{c.name}: first line must be `# ruff: noqa`")
        if c.kind == "rejected":
            unknown = [r for r in c.expected if r not in RULES]
            if not c.expected or unknown:
                problems.append(f"{c.name}: MUST lists unknown rule ids {unknown}")
        elif c.kind == "contained":
            if not c.expected or not set(c.expected) <= CONTAINED_STATUSES:
                problems.append(
                    f"{c.name}: MUST statuses {c.expected} not among {sorted(CONTAINED_STATUSES)}"
                )
        else:
            problems.append(f"{c.name}: MUST must start with rejected: or contained:")
        if c.sandbox and (c.kind != "rejected" or not set(c.sandbox) <= SANDBOX_STATUSES):
            problems.append(f"{c.name}: SANDBOX is for rejected files, with statuses of {SANDBOX_STATUSES}")
    assert not problems, "\n".join(problems)
    assert set(HOLES) <= {c.name for c in CANDIDATES}, "HOLES names a candidate that does not exist"
    timeouts = [c.name for c in CONTAINED if c.expected == ("timeout",)]
    assert len(timeouts) <= MAX_TIMEOUT_CANDIDATES, f"too many slow timeout candidates: {timeouts}"


# --- static: the surface validator ---------------------------------------------------------------------


@pytest.mark.parametrize("candidate", _params(CANDIDATES, hole_kind="rejected"))
def test_static_validation(candidate: Candidate, table) -> None:
    report = validate(candidate.source, table, filename=candidate.path.name)
    if candidate.kind == "rejected":
        assert not report.ok, (
            f"{candidate.name} must be rejected ({candidate.headers['MUST']}) but was accepted"
        )
        missing = set(candidate.expected) - set(report.rules)
        assert not missing, f"expected rule(s) {sorted(missing)} among the violations:\n{report}"
    else:
        # Accepted on purpose: the run-time containment is what this candidate exercises.
        assert report.ok, f"{candidate.name} must pass the validator to reach the runtime guards:\n{report}"


# --- the campaign: one runner, one sandbox pool, one ledger ------------------------------------------------


def _file_snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root``: (mtime_ns, sha256)."""
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def _repo_snapshot() -> dict[str, Any]:
    """The working tree as git sees it: porcelain status and the mtime of every tracked/untracked file."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        files = [p for p in (ROOT / "afr").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        return {"status": None, "mtimes": {str(p): p.stat().st_mtime_ns for p in files}}
    listed = [n for n in _git("ls-files", "-z", "-c", "-o", "--exclude-standard").split("\0") if n]
    mtimes = {n: (ROOT / n).stat().st_mtime_ns for n in listed if (ROOT / n).is_file()}
    return {"status": _git("status", "--porcelain", "--untracked-files=all"), "mtimes": mtimes}


@dataclass
class Campaign:
    runner: CandidateRunner
    cfg: dict[str, Any]
    canary_before: dict[str, tuple[int, str]] = field(default_factory=dict)
    repo_before: dict[str, Any] = field(default_factory=dict)
    canary_after: dict[str, tuple[int, str]] = field(default_factory=dict)
    repo_after: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, RunRecord | BaseException | None] = field(default_factory=dict)
    unvalidated: dict[str, RunResult] = field(default_factory=dict)


@pytest.fixture(scope="module")
def canary() -> Iterator[Path]:
    """The fixed directory hostile candidates aim at, with a sentinel file; removed afterwards."""
    shutil.rmtree(CANARY_DIR, ignore_errors=True)
    CANARY_DIR.mkdir(parents=True)
    (CANARY_DIR / SENTINEL).write_text("untouched\n")
    yield CANARY_DIR
    shutil.rmtree(CANARY_DIR, ignore_errors=True)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory, canary: Path) -> Iterator[Campaign]:
    base = tmp_path_factory.mktemp("adversarial")
    cfg = load_profile_config(PROFILE)
    cfg.update(rounds=ROUNDS, local_steps=LOCAL_STEPS)
    generous = ArmBudget(10_000, 10**12)
    # The parent holds a secret while the sandbox starts (and for the whole module): no child may see it.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ENV_KEY, ENV_VALUE)
        runner = CandidateRunner(
            base / "campaign",
            name="adversarial",
            profile=make_profile(PROFILE, cfg),
            agent="adversary",
            limits={"agent": generous, "control": generous, "finals": generous},
            settings=SETTINGS,
        )
        try:
            runner.pool.warm()  # created once here: the lazy property is not meant for concurrent first use
            yield Campaign(runner, cfg)
        finally:
            runner.close()


def _run_or_error(runner: CandidateRunner, candidate: Any) -> RunRecord | BaseException | None:
    try:
        return runner.run(candidate, seed=0)
    except Exception as exc:  # recorded and asserted on by the candidate's own test
        return exc


@pytest.fixture(scope="module")
def executed(campaign: Campaign, canary: Path) -> Campaign:
    """Runs every contained candidate through the runner and every SANDBOX file unvalidated, concurrently."""
    runner = campaign.runner
    campaign.canary_before = _file_snapshot(canary)
    campaign.repo_before = _repo_snapshot()
    records = {
        c.name: runner.propose("agent", "adversary", c.source, proposal_key=c.name)
        for c in sorted(CONTAINED, key=lambda c: c.expected != ("timeout",))  # slow ones first
    }
    raw: dict[str, Future[RunResult]] = {}
    for c in UNVALIDATED:
        job = RunJob(
            job_id=f"unvalidated/{c.name}",
            profile=PROFILE,
            profile_cfg=campaign.cfg,
            recipe_source=c.source,
            timeout_s=SETTINGS.timeout_s,
            memory_mb=SETTINGS.memory_mb,
        )
        raw[c.name] = runner.pool.submit(job)
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="adversarial-run") as threads:
        futures = {name: threads.submit(_run_or_error, runner, record) for name, record in records.items()}
        campaign.runs = {name: f.result() for name, f in futures.items()}
    campaign.unvalidated = {name: f.result() for name, f in raw.items()}
    campaign.canary_after = _file_snapshot(canary)
    campaign.repo_after = _repo_snapshot()
    return campaign


# --- propose: every candidate is recorded; rejected ones never run --------------------------------------


@pytest.mark.parametrize("candidate", _params(CANDIDATES, hole_kind="rejected"))
def test_propose_records_and_rejected_never_run(candidate: Candidate, campaign: Campaign) -> None:
    runner = campaign.runner
    record = runner.propose("agent", "adversary", candidate.source, proposal_key=candidate.name)
    assert record.status != "duplicate", f"{candidate.name} duplicates candidate {record.duplicate_of}"
    if candidate.kind == "contained":
        assert record.status != "rejected", "\n".join(record.reasons)
        return
    assert record.status == "rejected", f"{candidate.name} was stored as {record.status!r}, not rejected"
    reasons = "\n".join(record.reasons)
    for rule in candidate.expected:
        assert f"[{rule}]" in reasons, f"rule {rule!r} missing from the stored reasons:\n{reasons}"
    assert runner.run(record, seed=0) is None
    assert runner.ledger.runs(runner.campaign_id, candidate_id=record.id) == []
    assert runner.ledger.candidate(record.id).status == "rejected"


# --- runtime: contained candidates run and fail in a controlled way ---------------------------------------


@pytest.mark.parametrize("candidate", _params(CONTAINED, hole_kind="contained"))
def test_runtime_containment(candidate: Candidate, executed: Campaign) -> None:
    runner = executed.runner
    run = executed.runs[candidate.name]
    if isinstance(run, BaseException):
        pytest.fail(f"runner.run raised {type(run).__name__}: {run}")
    assert run is not None, "an accepted candidate was not run"
    assert run.status != "ok", f"{candidate.name} ran to completion (final metric {run.final_metric})"
    assert run.status in candidate.expected, (
        f"status {run.status!r}, expected {candidate.expected}: {run.message}"
    )
    assert run.message, "a contained run must say why it stopped"
    assert [r.id for r in runner.ledger.runs(runner.campaign_id, candidate_id=run.candidate_id)] == [run.id]
    record = runner.ledger.candidate(run.candidate_id)
    assert record.status == "failed"
    assert record.score is None
    assert any(r.startswith(f"{run.status}:") for r in record.reasons), record.reasons


@pytest.mark.parametrize("candidate", _params(UNVALIDATED, hole_kind="sandbox"))
def test_sandbox_contains_unvalidated_source(candidate: Candidate, executed: Campaign) -> None:
    """Defence in depth: even with the validator bypassed, the sandbox contains the attack."""
    outcome = executed.unvalidated[candidate.name]
    assert outcome.status in candidate.sandbox, (outcome.status, outcome.message)
    assert ENV_VALUE not in outcome.message and "LEAKED" not in outcome.message, outcome.message
    assert ENV_VALUE not in repr(outcome.curve)


# --- the sandbox sealed itself, as root or not -------------------------------------------------------------


def test_sandbox_isolation_applied(campaign: Campaign) -> None:
    """No network, read-only mounts and the seccomp filter, root or not (unprivileged: via a user namespace).

    The adversarial suite runs unprivileged too (tests/test_adversarial_unprivileged.py re-runs it as
    nobody when run as root); a machine whose kernel refuses unprivileged user namespaces fails here.
    """
    isolation = campaign.runner.pool.warm()["isolation"]
    wanted = ["no_network", "readonly_fs", "seccomp", "malloc_perturb"]
    if os.geteuid() != 0:
        wanted.append("user_namespace")
    missing = [k for k in wanted if not isolation.get(k)]
    assert not missing, f"the sandbox runs without {missing} (uid {os.geteuid()}): {isolation}"


# --- nothing outside the campaign directory changed ------------------------------------------------------


def test_nothing_outside_the_campaign_dir_changed(executed: Campaign) -> None:
    assert executed.runs, "no candidate ran"
    assert executed.canary_before == {SENTINEL: executed.canary_before[SENTINEL]}
    assert executed.canary_after == executed.canary_before, "the canary directory changed"
    assert (CANARY_DIR / SENTINEL).read_text() == "untouched\n"
    assert executed.repo_after["status"] == executed.repo_before["status"], "git status changed"
    changed = {
        name
        for name in executed.repo_before["mtimes"].keys() | executed.repo_after["mtimes"].keys()
        if executed.repo_before["mtimes"].get(name) != executed.repo_after["mtimes"].get(name)
    }
    assert not changed, f"files of the repository changed during the runs: {sorted(changed)}"
    campaign_dir = executed.runner.dir.resolve()
    assert ROOT not in campaign_dir.parents, "the campaign directory must live outside the repository"
