"""The campaign: an agent arm and a scalar-only control arm, side by side under one accountant.

Each arm searches in its own thread until it has spent its run budget: equal runs, not equal wall time, so an
agent that thinks for minutes never holds the control (and with two sandbox workers neither arm waits for the
other's runs). An arm decides its next run from its own history only, while its current run trains
(``campaign.lookahead``: the decision sees the arm's results up to two runs back, so no worker waits on the
parent's recording and proposing), and the ledger numbers candidates within their arm, so a seeded campaign
records the same candidates under the same names (``agent#7``) whatever the timing. Everything is recorded in
the ledger as it happens; the same command after a crash or Ctrl-C continues where it stopped. With seed
racing (``campaign.racing``) an arm's next run may be a promotion of one of its earlier candidates to the next
search seed instead of a new candidate, by the same rule for both arms (``afr/evaluation/_racing.py``).

SIGINT and SIGTERM (any number of them) stop the campaign without recording the runs in flight: they stay
reserved, and the same command first re-runs them, each in its arm, so that a resumed seeded campaign
records what an uninterrupted one records (see ``_signals``). A signal during an agent's proposal call (an
LLM request) abandons the call and records nothing of it; the resumed campaign makes that call again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..agents import Agent, AgentContext, HistoryItem, Proposal, make_agent
from ..budget import ArmBudget, BudgetExhausted
from ..controls import AgentStudyRecorder, ScalarControl, make_control
from ..data import default_data_dir
from ..errors import AFRError, CampaignFailure, ConfigError, StorageError, storage_error
from ..evaluation import (
    PENDING_KEY,
    CampaignFindings,
    ClassificationRules,
    RacingSettings,
    arm_failures,
    closing_summary,
    collect_findings,
    final_seed_count,
    finals_runs_needed,
    load_rules,
    next_promotion,
    rung_histories,
    select_finalists,
    write_report,
)
from ..ledger import BASELINE_KEY, WORKER_KEY, CandidateRecord, Ledger, RunRecord, campaign_lock
from ..profiles import Profile, import_root, make_profile
from ..recipe import RecipeSource, recipe_source
from ..sandbox import RunJob, SandboxClosed, SandboxPool
from ..surface import SurfaceTable, render_profile_surface, surface_table, validate
from ._brief import record_usage, task_brief
from ._finals import FinalsPlan, run_finals
from ._progress import CampaignProgress, print_line
from ._retry import study_name
from ._runner import CandidateRunner, RunnerSettings, StartedRun, make_pool, run_key
from ._shared import Heartbeat, LocalWorkers, joined_campaign, worker_name
from ._signals import StopSignals

__all__ = [
    "DEFAULT_LOOKAHEAD",
    "CampaignSettings",
    "CampaignResult",
    "Campaign",
    "CampaignFailure",
    "check_candidate",
    "join_settings",
]


DEFAULT_LOOKAHEAD = 2
"""``campaign.lookahead`` unless set. With 2 an arm keeps two runs queued while it records and decides, so
the sandbox workers do not wait for the parent (heart_disease search, 2 cores: workers idle 12.5 % with 1,
4.4 % with 2, at the same wall time); each decision sees the arm's results up to two runs back."""


@dataclass(frozen=True)
class CampaignSettings:
    """What a campaign is: profile, agent, per-arm budget, seeds, resources."""

    name: str
    directory: Path
    profile: str
    profile_cfg: Mapping[str, Any]
    agent_cfg: Mapping[str, Any]
    control_cfg: Mapping[str, Any]
    runs_per_arm: int
    agent_runs: int | None = None
    """FL runs of the agent arm when not ``runs_per_arm`` (``afr evaluate``: 1, for the given file)."""
    seed: int = 0
    data_dir: str | None = None
    runner: RunnerSettings = RunnerSettings()
    proposals_per_step: int = 4
    max_repairs: int = 2
    finals: bool = True
    """After the search: re-run the finalists with fresh paired seeds on test and held-out settings."""
    top_k: int = 3
    final_seeds: int | None = None
    """Final seeds per finalist; None: as many as the profile's ``verdict`` needs (power-sized)."""
    heldout_seeds: int | None = None
    """Seeds per held-out setting that needs runs of its own; None: the final seeds."""
    evaluation_cfg: Mapping[str, Any] = field(default_factory=dict)
    """Classification thresholds over ``afr/conf/evaluation/default.yaml`` (the margin is the profile's)."""
    max_agent_calls: int | None = None
    """Give up on the agent arm after this many proposal calls in a row that yield nothing runnable (10)."""
    storage: str | None = None
    """The database URL of the ledger and both Optuna studies (``campaign.storage=``); None: the SQLite file
    ``<directory>/ledger.db``. The campaign is found there by its name; artifacts stay in ``directory``."""
    lookahead: int = DEFAULT_LOOKAHEAD
    """Runs an arm decides ahead of its last recorded result (``campaign.lookahead``): with L, each arm
    proposes its next run while its L latest runs train, so the sandbox workers do not wait on the parent's
    recording and proposing; every decision then sees the arm's results up to L runs back. 0: each run is
    decided after the previous one is recorded. Either way the ledger does not depend on timing."""
    racing: RacingSettings | None = None
    """Seed racing (``campaign.racing``): promote the best ``1/eta`` of each arm's candidates to further
    search seeds, the same rule for both arms (``afr/evaluation/_racing.py``); None: one search seed."""
    attempt: int = 1
    """Which attempt of the campaign this is: a failed one is retried under its name as attempt n + 1
    (``afr/campaign/_retry.py``); recorded in the config from the second attempt on."""
    shared: bool = False
    """Several processes search this campaign at once (``campaign.shared``; ``campaign.workers`` > 2 starts
    the extra ones on this machine, ``afr worker <URL> <campaign>`` joins from others): see ``_shared``."""
    join: bool = False
    """This process joins a shared campaign another process started (``afr worker``): it searches, and leaves
    the baseline, the finals and the report to that process."""
    stale_after_s: float = 60.0
    """A shared campaign's worker silent (no heartbeat) for this long has stopped: its runs are taken over."""
    await_workers: int = 0
    """A shared campaign's first process starts the search once this many other workers have joined (its
    own extra processes of ``campaign.workers`` > 2 are always awaited): a worker that is still starting when
    the search ends would take no part in it."""

    def __post_init__(self) -> None:
        check_campaign_name(self.name)  # before any folder is made
        # Absolute paths, fixed once in the parent: sandboxed runs start in another directory and home, so a
        # relative or default data folder would mean another (empty) folder there.
        object.__setattr__(self, "directory", Path(self.directory).expanduser().resolve())
        folder = Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()
        object.__setattr__(self, "data_dir", str(folder.resolve()))
        if self.shared and self.racing is not None:
            raise ConfigError(
                "seed racing and a shared campaign do not go together (two workers would promote the same "
                "candidate)",
                where="campaign.racing.enabled=true with campaign.shared/campaign.workers > 2",
                fix="turn one of them off",
            )
        if isinstance(self.lookahead, bool) or not isinstance(self.lookahead, int) or self.lookahead < 0:
            raise ConfigError(
                f"campaign.lookahead must be a non-negative integer, got {self.lookahead!r}",
                where="campaign.lookahead=",
                fix="0 (decide each run after the previous one's result) or 1 (the default)",
            )
        if self.shared and not 0 < float(self.stale_after_s) < math.inf:
            raise ConfigError(
                f"campaign.stale_after_s must be a positive number of seconds, got {self.stale_after_s!r}",
                where="campaign.stale_after_s=",
            )

    def where(self) -> str:
        """Where the campaign keeps its records, for the console."""
        if self.storage is None:
            return f"records in {self.directory}"
        from sqlalchemy.engine import make_url

        shown = make_url(self.storage).render_as_string(hide_password=True)
        return f"records in {shown} (campaign {self.name!r}), artifacts in {self.directory}"

    def as_config(self) -> dict[str, Any]:
        # The profile's config as built (every override, the held-out clients set aside) is recorded by
        # the runner: it is the task that ran.
        return {
            "agent_cfg": dict(self.agent_cfg),
            "control_cfg": dict(self.control_cfg),
            "runs_per_arm": self.runs_per_arm,
            "agent_runs": self.agent_runs,
            "seed": self.seed,
            "proposals_per_step": self.proposals_per_step,
            "max_repairs": self.max_repairs,
            "finals": [self.finals, self.top_k, self.final_seeds, self.heldout_seeds],
            "evaluation_cfg": dict(self.evaluation_cfg),
            # Only when the arms decide ahead: a campaign recorded before lookahead existed decided each run
            # after the previous one, as lookahead=0 does, and keeps its config (and hash).
            **({"lookahead": self.lookahead} if self.lookahead else {}),
            # Only with racing on: a campaign without it keeps the config (and hash) it always had.
            **({"racing": {"eta": self.racing.eta, "rungs": self.racing.rungs}} if self.racing else {}),
            # Only from the second attempt on: the first attempt's config (and hash) is as it always was.
            **({"attempt": self.attempt} if self.attempt > 1 else {}),
            # Only for a shared campaign: what a joining worker needs besides the above.
            **(
                {
                    "shared": True,
                    "stale_after_s": self.stale_after_s,
                    "runner_limits": {"timeout_s": self.runner.timeout_s, "memory_mb": self.runner.memory_mb},
                }
                if self.shared
                else {}
            ),
        }


MAX_NAME_BYTES = 255
"""The longest campaign name (UTF-8 bytes): it names the campaign's folder by default, and file systems
allow 255 bytes per name (so does the ledger's name column)."""


def check_campaign_name(name: str) -> None:
    """Refuse, in one line, a campaign name that cannot name a folder: empty, too long, or with a NUL."""
    size = len(str(name).encode("utf-8"))
    if not str(name).strip() or "\0" in str(name) or size > MAX_NAME_BYTES:
        shown = f"{str(name)[:40]}…" if len(str(name)) > 40 else str(name)
        raise ConfigError(
            f"campaign.name {shown!r} is {'empty' if not str(name).strip() else f'{size} bytes long'}; "
            f"a campaign name is 1 to {MAX_NAME_BYTES} bytes (UTF-8) without NUL, as it names a folder",
            where="campaign.name=",
            fix=f"choose a shorter campaign.name=... (at most {MAX_NAME_BYTES} characters of ASCII)",
        )


@dataclass
class ArmStatus:
    runs: int = 0
    failures: int = 0
    rejected: int = 0
    duplicates: int = 0
    best: float | None = None
    best_candidate: str | None = None
    """The best candidate's name (``agent#30``)."""


@dataclass
class CampaignResult:
    campaign_id: int
    directory: Path
    arms: dict[str, ArmStatus] = field(default_factory=dict)
    spent: dict[str, ArmBudget] = field(default_factory=dict)
    seconds: float = 0.0
    stopped_early: str = ""
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: str = ""
    """Why the campaign failed (its baseline's first search run failed, or an arm has no successful run);
    '' when it did not."""


@dataclass
class _Planned:
    """A run an arm decided on: its candidate and search seed, and what the arm does with the run's record
    once it is recorded (``then``: tell Optuna, queue an agent's repair, report the line)."""

    candidate: CandidateRecord
    seed: int
    then: Callable[[CandidateRecord, RunRecord | None], None]
    promotion: bool = False


class Campaign:
    """One campaign; :meth:`run` searches until both arms have spent their budget."""

    def __init__(
        self,
        settings: CampaignSettings,
        *,
        echo: Callable[[str], None] = print_line,
        progress: CampaignProgress | None = None,
    ) -> None:
        """``echo`` gets the console lines; ``progress`` (default: bars on stderr if it is a terminal, plain
        lines if not) counts the runs."""
        self.settings = settings
        self.echo = echo
        self.progress = progress if progress is not None else CampaignProgress()
        # A shared campaign's worker has a name of its own (its claims, trials and slots carry it); a joining
        # worker's agent draws from a seed of its own, or it would repeat the first worker's proposals.
        self.worker: str | None = worker_name() if settings.shared else None
        agent_seed = settings.seed
        if settings.join:
            agent_seed = int(hashlib.sha256(f"{settings.seed}:{self.worker}".encode()).hexdigest()[:8], 16)
        self.agent: Agent = make_agent(settings.agent_cfg, agent_seed)
        # The one profile of this campaign, every override applied: the surface table, the agents' view, the
        # control's space, the runs and the finals all read it.
        self.profile: Profile = make_profile(
            settings.profile, settings.profile_cfg, data_dir=settings.data_dir
        ).for_campaign()
        self.baseline: RecipeSource = recipe_source(self.profile.baseline)
        self.table: SurfaceTable = surface_table(self.profile, baseline=self.baseline)
        self.rules: ClassificationRules = load_rules(
            **{**dict(settings.evaluation_cfg), "margin": self.profile.verdict.margin}
        )
        self.final_seeds: list[int] = self.profile.final_seed_list(
            settings.final_seeds
            or final_seed_count(
                self.profile.verdict.paired_sd,
                self.profile.verdict.detect,
                self.profile.verdict.margin,
                self.profile.verdict.final_seeds,
                top_k=settings.top_k,
                rules=self.rules,
            )
        )
        self.heldout_seeds = self.final_seeds[: settings.heldout_seeds or len(self.final_seeds)]
        # Seed racing's rungs: search seed r for rung r, never a final (hence held-out) seed.
        self.racing_seeds: list[int] = (
            self.profile.search_seed_list(settings.racing.rungs) if settings.racing else []
        )
        if clash := sorted(set(self.racing_seeds) & set(self.final_seeds)):
            raise ConfigError(
                f"seed racing's search seeds {self.racing_seeds} overlap the final seeds {self.final_seeds} "
                f"(seed {', '.join(map(str, clash))})",
                where=f"campaign.racing.rungs={settings.racing.rungs if settings.racing else ''} with "
                f"afr/conf/profile/{self.profile.name}.yaml: seeds",
                fix="use fewer rungs, or declare seeds.search/seeds.final that are disjoint",
            )
        self._preflight(settings)  # a missing key or missing data fails here, before anything is written
        # One process per campaign: a second one stops here, naming the owner, before it opens the ledger
        # or Optuna's study. Released at the end of run() (or when this object is collected).
        self._lock = campaign_lock(settings.directory)
        if self._lock.recovered is not None:
            echo(self._lock.note())
        self.search_seed = self.profile.search_seeds[0]
        # SIGINT/SIGTERM: the sandbox closes (runs in flight return to reserved), the main thread stops at a
        # safe point; a second signal changes nothing (see _signals).
        self._halted = threading.Event()  # set when the campaign stops: the arm threads write nothing more
        # Each arm's runs started and not yet recorded (see _arm_search), oldest first.
        self._flights: dict[str, deque[tuple[_Planned, StartedRun]]] = {"control": deque(), "agent": deque()}
        self._local: LocalWorkers | None = None
        self._agent_study: AgentStudyRecorder | None = None  # the agent arm's dashboard study, opened once
        self._unproposed: list[Any] | None = None  # control trials asked before this process started
        self._signals = StopSignals(self._stop_sandbox)
        pool = make_pool(settings.runner)  # campaign.executor: local, or a Ray cluster
        self._start_pool: SandboxPool | None = pool
        try:
            with self._signals:
                # Before the campaign is recorded: a baseline that cannot run stops here, nothing charged.
                self._preflight_run(pool)
                self._signals.check()
                self._open(settings, pool)
        except BaseException as exc:
            # Whatever stops the start (the preflight, an unusable ledger, missing data, a full disk, a
            # signal): no sandbox worker or reader thread outlives it, and the lock is free for the next try.
            pool.close()
            self._lock.release()
            if isinstance(exc, SandboxClosed):
                raise KeyboardInterrupt from None
            if isinstance(exc, Exception) and (found := self._stopped_by(exc)) is not None:
                raise found from exc
            raise

    def _stopped_by(self, exc: Exception) -> StorageError | None:
        """Record that ``exc`` stopped the campaign; the :class:`StorageError` to raise instead when it is a
        full disk, a read-only folder or a name too long (naming the campaign folder when it names no file).

        A campaign this process was running is marked ``interrupted``, not left ``running``: the same
        command resumes it. A ledger that cannot be written any more is left exactly as it was (SQLite
        rolled the failed write back), so resuming works just the same."""
        runner = getattr(self, "runner", None)
        if runner is not None and not self.settings.join:  # a joining worker leaves the campaign as it is
            with contextlib.suppress(Exception):
                if runner.ledger.campaign(runner.campaign_id).status == "running":
                    runner.ledger.finish_campaign(runner.campaign_id, "interrupted")
        return storage_error(exc, where=self.settings.directory)

    def _stop_sandbox(self) -> None:
        """Close the sandbox (the stop helper thread): runs in flight end interrupted, never recorded; an
        agent's model call in flight in an arm thread (a run-time repair) is abandoned, else it would hold
        the arm, hence the stop, until its timeout."""
        self._halted.set()
        agent = getattr(self, "agent", None)
        if agent is not None:
            agent.cancel()
        runner: CandidateRunner | None = getattr(self, "runner", None)
        if runner is not None:
            runner.close()
        elif self._start_pool is not None:
            self._start_pool.close()

    def _open(self, settings: CampaignSettings, pool: SandboxPool) -> None:
        """The ledger, the runner, the control's study and the agent's queue (resumed from the ledger)."""
        self.agent_name = str(settings.agent_cfg.get("name", settings.agent_cfg.get("kind")))
        ledger = Ledger(settings.storage) if settings.storage else None
        self.runner = CandidateRunner(
            settings.directory,
            name=settings.name,
            profile=self.profile,
            baseline=self.baseline,
            table=self.table,
            agent=self.agent_name,
            limits=self._limits(),
            settings=settings.runner,
            config={**settings.as_config(), **self._facts()},
            pool=pool,
            ledger=ledger,
            campaign_id=self._joined(ledger, settings) if ledger is not None and settings.join else None,
        )
        self.profile.data("val")  # missing data is reported now, with the fetch hint
        self.control: ScalarControl = make_control(
            settings.control_cfg,
            storage_url=self.runner.ledger.url,
            study_name=study_name(settings.name, "control"),
            space=self.table.tunable_scalars,
            seed=settings.seed,
            higher_is_better=self.profile.higher_is_better,
            worker=self.worker,
            parallel=settings.lookahead > 0,  # its next trial is asked while the current one runs
            sole_writer=not settings.shared,  # the campaign's lock keeps every other process out
        )
        self.surface_doc = render_profile_surface(self.table, self.baseline)
        self.brief = task_brief(self.profile, self.table, self.baseline, self.surface_doc)
        self._agent_queue: list[CandidateRecord] = [
            c
            for c in self.runner.ledger.candidates(self.runner.campaign_id, arm="agent")
            if c.status in ("accepted", "running")
            and c.meta.get(PENDING_KEY) is None  # not a promotion
            and not settings.shared  # a shared campaign's worker starts afresh; orphans are taken over
        ]
        self._agent_calls = (
            0
            if settings.shared
            else len(
                {
                    str(c.meta.get("proposal_key", "")).split("/")[0].rsplit("-", 1)[0]
                    for c in self._agent_history_records()
                }
            )
        )
        self._fruitless_calls = 0
        self.report_path: Path | None = None
        self.findings: CampaignFindings | None = None

    def _joined(self, ledger: Ledger, settings: CampaignSettings) -> int:
        """The id of the shared campaign this worker joins (``afr worker``), through the campaign's ledger
        (still running and shared: it may have ended since ``join_settings`` read it)."""
        record = ledger.campaign_by_name(settings.name)
        if record is None or record.status != "running" or not record.config.get("shared"):
            raise ConfigError(
                f"campaign {settings.name!r} is not a shared campaign that is running",
                where=f"afr worker {settings.storage} {settings.name}",
                fix="join a campaign started with campaign.shared=true while its first process runs it",
            )
        return record.id

    def _facts(self) -> dict[str, Any]:
        """What the report needs without rebuilding the profile: the baseline, metric and control space."""
        return {
            "baseline": {
                "label": self.baseline.label,
                "class_name": self.baseline.class_name,
                "shipped": self.baseline.shipped,
                "sha256": self.baseline.sha256,
            },
            "metric": self.profile.metric_name,
            "higher_is_better": self.profile.higher_is_better,
            "control_space": {name: s.as_dict() for name, s in self.table.tunable_scalars.items()},
            "rules": self.rules.as_dict(),
            "final_seeds": self.final_seeds,
            "heldout_seeds": self.heldout_seeds,
            "heldout_settings": sorted(self.profile.heldout_settings()),
            **({"racing_seeds": self.racing_seeds} if self.racing_seeds else {}),
        }

    def _preflight(self, settings: CampaignSettings) -> None:
        """Report a bad baseline, a missing API key, an agent endpoint out of reach and missing data together,
        each with its fix."""
        problems: list[AFRError] = []
        agent, profile = self.agent, self.profile
        for check in (self._check_baseline, agent.check_ready, agent.check_endpoint, profile.require_data):
            try:
                check()
            except AFRError as exc:
                problems.append(exc)
        if len(problems) == 1:
            raise problems[0]
        if problems:
            raise ConfigError(
                "; and ".join(p.what for p in problems),
                where=", ".join(p.where for p in problems if p.where) or None,
                fix=" -- ".join(p.fix for p in problems if p.fix) or None,
            )

    def _check_baseline(self) -> None:
        """The baseline must itself pass the validator: the control runs it, the agents edit it."""
        report = validate(self.baseline.text, self.table, package=self.baseline.package)
        if not report.ok:
            raise ConfigError(
                f"the baseline {self.baseline.label} breaks the recipe surface ({report.in_brief()})",
                where="baseline=",
                fix="fix the file (`python -m afr.surface validate <file>` lists every violation) "
                "or choose a shipped recipe",
            )

    def _preflight_run(self, pool: SandboxPool) -> None:
        """Run the baseline for one round in the sandbox, exactly as the search will run it; raise
        :class:`CampaignFailure` with its reason if it fails.

        What the static checks cannot see (a data folder the sandbox cannot read, a baseline file that raises
        at run time, a broken environment) would otherwise fail every run of both arms. This run is not a
        candidate's: it is neither recorded nor charged, and it runs on every start (a resume too: the
        environment may have changed since)."""
        baseline = self.baseline
        cfg = {**self.profile.cfg, "rounds": 1}
        job = RunJob(
            job_id="preflight/baseline",
            profile=self.profile.name,
            profile_cfg=cfg,
            data_dir=str(self.profile.data_dir) if self.profile.data_dir is not None else None,
            recipe_source=None if baseline.shipped else baseline.text,
            recipe_name=baseline.shipped,
            class_name=None if baseline.shipped else baseline.class_name,
            seed=self.search_seed,
            stage="search",
            timeout_s=self.settings.runner.timeout_s,
            memory_mb=self.settings.runner.memory_mb,
            import_roots=tuple(filter(None, [import_root(type(self.profile))])),
        )
        result = pool.run(job)
        val = result.curve[-1].get("val") if result.curve else None
        if result.status == "ok" and val is not None and math.isfinite(val):
            self.echo(
                f"preflight: the baseline {baseline.label} ran 1 round in the sandbox ({result.wall_s:.1f}s)"
            )
            return
        reason = result.message or ("no finite validation score" if result.status == "ok" else "")
        raise CampaignFailure(
            f"preflight: the baseline {baseline.label} did not run in the sandbox ({result.status}), so the "
            f"search does not start: "
            f"{' '.join(reason.split())[:400]}",
            where=f"campaign {self.settings.name!r}, data {self.profile.data_dir}",
            fix="nothing was run or charged; fix the cause and run the same command again",
        )

    def _limits(self) -> dict[str, ArmBudget]:
        settings = self.settings
        steps = self.profile.client_steps_per_run
        per_arm = ArmBudget(settings.runs_per_arm, settings.runs_per_arm * steps)
        agent_runs = settings.runs_per_arm if settings.agent_runs is None else settings.agent_runs
        finals = 0
        if settings.finals:
            extra = sum(bool(o) for o in self.profile.heldout_settings().values())
            finals = finals_runs_needed(settings.top_k, len(self.final_seeds), extra, len(self.heldout_seeds))
        return {
            "agent": ArmBudget(agent_runs, agent_runs * steps),
            "control": per_arm,
            "finals": ArmBudget(finals, finals * steps),
        }

    # --- the loop --------------------------------------------------------------------------------

    def run(self) -> CampaignResult:
        start = time.perf_counter()
        ledger, cid = self.runner.ledger, self.runner.campaign_id
        beat = None
        if self.worker is not None:
            beat = Heartbeat(ledger, cid, self.worker, every_s=max(0.2, self.settings.stale_after_s / 6))
        try:
            self._start_progress()
            with self._signals:
                try:
                    stopped, failure, findings = self._run(ledger, cid)
                except (KeyboardInterrupt, SandboxClosed) as exc:
                    if isinstance(exc, SandboxClosed) and not self._signals.requested.is_set():
                        raise
                    # Stopped by a signal (or an in-process KeyboardInterrupt): the sandbox closes, the runs
                    # in flight end without an outcome and stay reserved; the same command re-runs them.
                    # Later signals are ignored from here on, so this clean-up always completes.
                    self._signals.request()
                    self._signals.wait_stopped()
                    if not self.settings.join:  # a joining worker leaves; the campaign goes on
                        ledger.finish_campaign(cid, "interrupted")
                    raise KeyboardInterrupt from None
        except Exception as exc:
            if (found := self._stopped_by(exc)) is None:
                raise
            raise found from exc
        finally:
            if self._local is not None:
                self._local.stop()
            self.progress.close()
            self.runner.close()
            if beat is not None:
                beat.stop()
            self._lock.release()
        if findings is None:  # a joining worker: the finals and the report are the first process's
            result = CampaignResult(cid, self.runner.dir, self.status(), self.runner.spent(), 0.0, stopped)
            result.seconds = time.perf_counter() - start
            return result
        for line in closing_summary(findings, self.report_path, failure):
            self.echo(line)
        result = CampaignResult(
            cid, self.runner.dir, self.status(), self.runner.spent(), 0.0, stopped, failure=failure
        )
        result.evidence = {
            name: {"role": ev.arm, "search_score": ev.search_score, "test": ev.test, "heldout": ev.heldout}
            for name, ev in findings.evidence.items()
        }
        result.seconds = time.perf_counter() - start
        return result

    def _run(self, ledger: Ledger, cid: int) -> tuple[str, str, CampaignFindings | None]:
        """The search, the finals and the report: why the agent arm stopped early, why the campaign failed
        ('' each if not), and the findings (None for a joining worker: it only searches)."""
        stopped = failure = ""
        self._signals.check()  # a signal during the start: stop before anything runs
        self.runner.pool.warm()
        if self.settings.join:
            failure = self._await_baseline()
            if failure:
                self.echo(f"worker {self.worker}: nothing to search: {failure}")
                return "", failure, None
            return self._search(), "", None
        if self._remaining("control") and (not self.control.trials() or self._baseline_pending()):
            # The baseline (control trial 0) runs first, so every agent step sees its score: the
            # agent's context, and hence a seeded campaign, does not depend on thread timing.
            self._control_step()
        failure = self._baseline_failure()
        if not failure:
            if self.settings.shared and (extra := math.ceil(self.settings.runner.workers / 2) - 1) > 0:
                self._local = LocalWorkers(
                    extra,
                    url=ledger.url,
                    campaign=self.settings.name,
                    directory=self.runner.dir,
                    data_dir=str(self.settings.data_dir),
                    runner=self.settings.runner,
                )
                self.echo(f"{extra} more worker process(es) search this campaign (logs in workers/)")
            self._await_workers()
            stopped = self._search()
            if self._local is not None:
                for problem in self._local.wait():
                    self.echo(f"warning: {problem}; its runs were taken over")
            searched = [arm for arm in ("agent", "control") if self.runner.accountant.limits[arm].runs]
            failure = "; ".join(arm_failures(ledger, cid, searched).values())
        self._signals.check()
        if failure:
            # Nothing to compare: the finals would only spend budget. Said on the console, in the ledger
            # (status failed) and in the report; the command exits non-zero.
            self.echo(f"campaign failed: {failure}")
            ledger.finish_campaign(cid, "failed")
        else:
            if self.settings.finals:
                self.run_finals()
            self._signals.check()
            ledger.finish_campaign(cid, "finished")
        findings = collect_findings(ledger, cid)
        self.findings = findings
        self.report_path = write_report(self.runner.dir, findings=findings)
        return stopped, failure, findings

    def _await_workers(self) -> None:
        """The first process of a shared campaign waits until the workers it expects have joined (its own
        extra processes, plus ``await_workers``); a local worker that ends meanwhile is not waited for."""
        if not self.settings.shared:
            return
        local = self._local.procs if self._local is not None else []
        expected = self.settings.await_workers + len(local)
        if expected:
            self.echo(f"waiting for {expected} worker(s) to join before the search starts")
        while expected:
            live = self._live() - {str(self.worker)}
            ended = sum(p.poll() is not None for p in local)
            if len(live) + ended >= expected:
                return
            self._halted.wait(0.5)
            self._signals.check()

    def _await_baseline(self) -> str:
        """A joining worker waits for the baseline's search run (the first process runs it first); why the
        search must not go on ('' if it may)."""
        while True:
            for candidate in self.runner.ledger.candidates(self.runner.campaign_id, arm="control"):
                if candidate.meta.get("proposal_key") == BASELINE_KEY and candidate.status in (
                    "ok",
                    "failed",
                ):
                    return self._baseline_failure()
            if self.runner.ledger.campaign(self.runner.campaign_id).status != "running":
                return "the campaign is not running any more"
            self._halted.wait(1.0)
            self._signals.check()

    def _baseline_failure(self) -> str:
        """Why the search must not go on: the baseline (control trial 0) failed its search run ('' if not).

        Every comparison is against the baseline; the preflight ran it for one round only, so a baseline
        that breaks later is caught here, after one charged run instead of a whole failed search."""
        for candidate in self.runner.ledger.candidates(self.runner.campaign_id, arm="control"):
            if candidate.meta.get("proposal_key") == "control-0" and candidate.status == "failed":
                reason = " ".join((candidate.reasons[-1] if candidate.reasons else "").split())
                return (
                    f"the baseline {self.baseline.label} (control trial 0, {candidate.name}) failed its "
                    f"search run, so the search stops: {reason[:400]}"
                )
        return ""

    def _baseline_pending(self) -> bool:
        """Control trial 0 (the baseline) was asked but not told: its run was interrupted."""
        return any(trial.number == 0 for trial in self.control.pending())

    def _in_flight(self, arm: str) -> list[CandidateRecord]:
        """The arm's candidates scheduled (``running``) and not ended when the campaign stopped, in the order
        the arm scheduled them: by the row of the run each was to make (rows are created as runs start),
        then one marked and not yet started. Not by candidate id: a seed-racing promotion of an older
        candidate is scheduled after a newer candidate's first run, and the arm's next decision must see
        them recorded in the order an uninterrupted campaign recorded them."""
        ledger, cid = self.runner.ledger, self.runner.campaign_id
        candidates = ledger.candidates(cid, arm=arm, status="running")
        rows = {run.run_key: run.id for run in ledger.runs(cid, stage="search")}

        def scheduled(candidate: CandidateRecord) -> tuple[int, int]:
            pending = candidate.meta.get(PENDING_KEY)
            seed = int(pending) if pending is not None else self.search_seed
            row = rows.get(run_key(arm, candidate.id, "search", seed))
            return (0, row) if row is not None else (1, candidate.id)

        return sorted(candidates, key=scheduled)

    def _search(self) -> str:
        """Both arms' search until each has spent its budget; why the agent arm stopped early ('' if not).

        Each arm runs in its own thread, at its own pace: it decides its next run from its own history only
        (the agent also sees the baseline's score, recorded before either starts), so a slow agent — an LLM
        thinking for minutes — never holds the control, and a seeded campaign still records the same
        candidates under the same names (numbered within their arm) whatever the timing. The arms get equal
        run budgets, not equal wall time."""
        stopped = ""
        arms = ThreadPoolExecutor(max_workers=2, thread_name_prefix="arm")
        futures: list[Future[str]] = []
        try:
            if self.settings.shared:
                futures = [arms.submit(self._shared_search, arm) for arm in ("control", "agent")]
            else:
                futures = [arms.submit(self._control_search), arms.submit(self._agent_search)]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                # One arm failed (or the campaign is stopping): the other stops at once too, its run in
                # flight staying reserved (and an agent's call in flight abandoned).
                self._stop_sandbox()
            wait(futures)
            errors = [f.exception() for f in futures if f.exception() is not None]
            if errors:  # the cause, not the other arm's SandboxClosed that it brought about
                raise next((e for e in errors if not isinstance(e, SandboxClosed)), errors[0])
            stopped = futures[1].result()
        except BaseException:
            self._stop_sandbox()
            raise
        finally:
            arms.shutdown(wait=True)
        return stopped

    def _halt_check(self) -> None:
        """Raise :class:`SandboxClosed` in an arm thread once the campaign is stopping (a signal, or the
        other arm's failure): it writes nothing more."""
        if self._halted.is_set():
            raise SandboxClosed("the campaign is stopping")

    def _resumed(self, arm: str) -> list[_Planned]:
        """What the arm had scheduled when the campaign stopped, as it was scheduled (oldest first): the arm
        runs these first, then proposes exactly what an uninterrupted campaign proposed next (same
        candidates, same numbers)."""
        trials = (
            {f"control-{trial.number}": trial for trial in self.control.pending()} if arm == "control" else {}
        )
        plans = []
        for candidate in self._in_flight(arm):
            if candidate.meta.get(PENDING_KEY) is not None:  # a seed-racing promotion, run again as one
                self._agent_queue = [c for c in self._agent_queue if c.id != candidate.id]
                plans.append(self._promotion_plan(int(candidate.meta[PENDING_KEY]), candidate))
            elif arm == "control":
                trial = trials.get(str(candidate.meta.get("proposal_key")))
                # without a pending trial, its trial was told already: only the run's record is missing
                plans.append(self._control_plan(trial, candidate) if trial else self._search_plan(candidate))
            else:
                self._agent_queue = [c for c in self._agent_queue if c.id != candidate.id]
                plans.append(self._agent_plan(candidate))
        return plans

    def _arm_search(self, arm: str, plan_next: Callable[[], _Planned | str | None]) -> str:
        """One arm's search in its thread until it has spent its budget; why it stopped early ('' if not).

        ``plan_next`` decides the arm's next run (None: nothing to run this time, e.g. an Optuna trial that
        duplicates an earlier one; a string: the agent arm stops, and why). With ``campaign.lookahead`` = L,
        the arm decides run n + L + 1 while its runs up to n + L are in flight and records run n only after
        that decision: every decision sees the arm's results up to L runs back, never one that happened to
        end early, so the ledger does not depend on timing, and the sandbox workers do not wait while the arm
        records and decides (L = 0: each run decided after the previous one is recorded)."""
        flight: deque[tuple[_Planned, StartedRun]] = deque()
        self._flights[arm] = flight
        queued = deque(self._resumed(arm))
        stopped = ""
        while True:
            self._halt_check()
            planned: _Planned | str | None
            if queued:
                planned = queued.popleft()
            elif not stopped and self._remaining(arm):
                planned = plan_next()
                if isinstance(planned, str) and flight:
                    # The runs in flight may still give the agent something to run (a run-time repair).
                    while flight:
                        self._complete(*flight.popleft())
                    planned = plan_next() if self._remaining(arm) else planned
                if isinstance(planned, str):
                    stopped = planned
                    continue
            elif flight:
                self._complete(*flight.popleft())
                continue
            else:
                break
            if planned is None:
                continue
            flight.append((planned, self._begin(planned)))
            while len(flight) > self.settings.lookahead:
                self._complete(*flight.popleft())
        if stopped:
            self._agent_stopped(stopped)
        return stopped

    def _control_search(self) -> str:
        """The control arm's thread: promotions (seed racing) or new Optuna trials."""

        def plan_next() -> _Planned | None:
            if (promotion := self._promotion("control")) is not None:
                return self._promotion_plan(*promotion)
            trial_candidate = self._control_propose()
            return self._control_plan(*trial_candidate) if trial_candidate is not None else None

        return self._arm_search("control", plan_next)

    def _agent_search(self) -> str:
        """The agent arm's thread: promotions (seed racing) or the agent's candidates; why it stopped early
        ('' if it spent its budget)."""

        def plan_next() -> _Planned | str:
            if (promotion := self._promotion("agent")) is not None:
                return self._promotion_plan(*promotion)
            candidate_or_stop = self._agent_propose()
            if isinstance(candidate_or_stop, CandidateRecord):
                return self._agent_plan(candidate_or_stop)
            return candidate_or_stop

        return self._arm_search("agent", plan_next)

    # --- a shared campaign's search (several processes; see _shared) --------------------------------

    def _shared_search(self, arm: str) -> str:
        """One arm's search in a worker of a shared campaign; why the agent arm stopped early ('' if not).

        Each round: take over a run of a worker that stopped (its charge is already held), or reserve a
        budget slot, propose, claim the candidate and move the slot's charge to its run. When the budget
        is all spent or held, a joining worker leaves; the first process waits until no run is held any
        more (taking over those of workers that stop meanwhile), so that its finals see the whole search."""
        slot = f"{arm}/slot/{self.worker}"
        stopped = ""
        try:
            while True:
                self._halt_check()
                live = self._live()
                self._reap(arm, live)
                if self._take_over(arm, slot, live):
                    continue
                if not stopped and self._take_slot(arm, slot):
                    if arm == "control":
                        self._shared_control_step(slot, live)
                        continue
                    candidate_or_stop = self._agent_propose()
                    if isinstance(candidate_or_stop, CandidateRecord):
                        self._claim_and_run(
                            candidate_or_stop, slot, live, self._agent_run, (candidate_or_stop,)
                        )
                        continue
                    stopped = candidate_or_stop
                    self._agent_stopped(stopped)
                    self.runner.accountant.cancel(slot)
                    continue
                if self.settings.join or not self._held(arm):
                    return stopped
                self._halted.wait(min(1.0, self.settings.stale_after_s / 4))
        finally:
            if not self._halted.is_set():  # a stop keeps it reserved: it is reaped once this worker is stale
                with contextlib.suppress(Exception):
                    if self.runner.accountant.holds(slot):
                        self.runner.accountant.cancel(slot)

    def _live(self) -> set[str]:
        return self.runner.ledger.live_workers(self.runner.campaign_id, self.settings.stale_after_s) | {
            str(self.worker)
        }

    def _take_slot(self, arm: str, slot: str) -> bool:
        """Hold one run of the arm's budget under this worker's slot (kept if already held)."""
        try:
            self.runner.accountant.reserve(arm, slot, self.runner.run_client_steps)
        except BudgetExhausted:
            return False
        return True

    def _claim_and_run(
        self,
        candidate: CandidateRecord,
        slot: str,
        live: set[str],
        fn: Callable[..., None],
        args: tuple[Any, ...],
        *,
        statuses: tuple[str, ...] = ("accepted",),
    ) -> bool:
        """Claim the candidate for this worker and run it, its charge moved from the slot if its run holds
        none yet; False if another worker claimed it first (the slot stays held).

        A worker judged stopped (no heartbeat for ``stale_after_s``) may only be slow: it can charge the run
        between our claim and our move of the slot. The move then keeps the slot (checked and moved in one
        write) and this worker runs the run under that worker's charge — at worst the run is done twice, it is
        charged and recorded once (same key, same seed, same result)."""
        claimed = self.runner.ledger.claim_candidate(
            candidate.id, str(self.worker), statuses=statuses, live=live
        )
        if claimed is None:
            return False
        key = run_key(claimed.arm, claimed.id, "search", self.search_seed)
        self.runner.accountant.rekey(slot, key, unless_charged=True)
        fn(*args[:-1], claimed)
        return True

    def _shared_control_step(self, slot: str, live: set[str]) -> None:
        """A new trial (asked with constant liar), proposed, claimed and run; a duplicate keeps the slot."""
        trial_candidate = self._control_propose()
        if trial_candidate is not None:
            trial, candidate = trial_candidate
            self._claim_and_run(candidate, slot, live, self._control_run, (trial, candidate))

    def _orphans(self, arm: str, live: set[str]) -> list[CandidateRecord]:
        """The arm's candidates held by workers that stopped: running, or queued by an agent."""
        return [
            c
            for c in self.runner.ledger.candidates(
                self.runner.campaign_id, arm=arm, status=("running", "accepted")
            )
            if c.meta.get(WORKER_KEY) is not None and c.meta.get(WORKER_KEY) not in live
        ]

    def _take_over(self, arm: str, slot: str, live: set[str]) -> bool:
        """Run one candidate of a stopped worker under its own run key (its charge if it held one, else this
        worker's slot); False if there is none this worker can take now."""
        for candidate in self._orphans(arm, live):
            key = run_key(arm, candidate.id, "search", self.search_seed)
            if not self.runner.accountant.holds(key) and not self._take_slot(arm, slot):
                # Nothing left to charge it to (its worker stopped before moving a slot to it): it never ran
                # and never will; as an unclaimed candidate it holds nothing the first process waits for.
                if candidate.status == "running":
                    self.runner.ledger.update_candidate(candidate.id, status="accepted")
                continue
            if arm == "agent":
                fn, args = self._agent_run, (candidate,)
            else:
                pending = {f"control-{t.number}": t for t in self.control.pending()}
                trial = pending.get(str(candidate.meta.get("proposal_key")))
                fn, args = (
                    (self._control_run, (trial, candidate)) if trial else (self._search_run, (candidate,))
                )
            if self._claim_and_run(candidate, slot, live, fn, args, statuses=("running", "accepted")):
                self.echo(
                    f"[{arm:>7}] took over {candidate.name} from stopped worker {candidate.meta[WORKER_KEY]}"
                )
                return True
        return False

    def _reap(self, arm: str, live: set[str]) -> None:
        """Free what stopped workers held and no run uses: their budget slots (cancelled) and, in the
        control, trials they asked but never proposed (failed)."""
        prefix = f"{arm}/slot/"
        for reservation in self.runner.accountant.pending(arm):
            holder = reservation.run_key.removeprefix(prefix)
            if reservation.run_key.startswith(prefix) and holder not in live:
                with contextlib.suppress(Exception):  # another worker may reap it at the same moment
                    self.runner.accountant.cancel(reservation.run_key)
        if arm != "control":
            return
        proposed = {
            str(c.meta.get("proposal_key"))
            for c in self.runner.ledger.candidates(self.runner.campaign_id, arm="control")
        }
        for trial in self.control.pending():
            owner = trial.meta.get("worker")
            if owner is not None and owner not in live and f"control-{trial.number}" not in proposed:
                self.control.tell(trial.number, None, message=f"asked by worker {owner}, which stopped")

    def _held(self, arm: str) -> bool:
        """Whether any run of the arm is still held: a candidate running, or a budget slot reserved."""
        cid = self.runner.campaign_id
        return bool(
            self.runner.ledger.candidates(cid, arm=arm, status="running")
            or any("/slot/" in r.run_key for r in self.runner.accountant.pending(arm))
        )

    def _agent_stopped(self, stopped: str) -> None:
        """Say why the agent arm stopped early: on the console, and once per campaign in the ledger (several
        workers of a shared campaign may each stop it)."""
        self.echo(f"agent arm stopped: {stopped}")
        cid = self.runner.campaign_id
        if not any(arm == "agent" for arm, _, _ in self.runner.ledger.notes(cid, kind="stopped")):
            self.runner.ledger.add_note(cid, arm="agent", kind="stopped", text=stopped)
        spent = self.runner.accountant.spent("agent").runs
        self.progress.update("agent", spent, total=spent)

    def _begin(self, planned: _Planned) -> StartedRun:
        """Mark the run's candidate ``running`` (a promotion with its seed, in the same write), then start it.

        A stop between the two leaves a candidate marked and not run: the resumed campaign runs it, as the
        run it was to be (see :meth:`_resumed`)."""
        self._halt_check()
        candidate = planned.candidate
        if planned.promotion:  # marked as one, in the same write: a resume re-runs the promotion
            meta = {**candidate.meta, PENDING_KEY: planned.seed}
            self.runner.ledger.update_candidate(candidate.id, status="running", meta=meta)
        else:
            self.runner.ledger.update_candidate(candidate.id, status="running")
        return self.runner.start(candidate, planned.seed, promotion=planned.promotion)

    def _complete(self, planned: _Planned, started: StartedRun) -> None:
        """Wait for the run, record it, and let the arm take in its result."""
        planned.then(planned.candidate, self.runner.finish(started))

    def _run_now(self, planned: _Planned) -> None:
        """Start a run and complete it at once (the baseline's first run; a shared campaign's runs, claimed
        and marked by their worker)."""
        self._complete(
            planned, self.runner.start(planned.candidate, planned.seed, promotion=planned.promotion)
        )

    def _search_plan(self, candidate: CandidateRecord) -> _Planned:
        """A search run whose arm has nothing more to do with its result (its trial was told already)."""
        return _Planned(candidate, self.search_seed, lambda _candidate, _record: None)

    def _search_run(self, candidate: CandidateRecord) -> None:
        self._run_now(self._search_plan(candidate))

    def _promotion(self, arm: str) -> tuple[int, CandidateRecord] | None:
        """The arm's next seed-racing promotion, ``(search seed, candidate)``, from its own search runs in the
        ledger; None when racing is off or no candidate is due (the arm proposes a new one)."""
        racing = self.settings.racing
        if racing is None:
            return None
        ledger, cid = self.runner.ledger, self.runner.campaign_id
        candidates = ledger.candidates(cid, arm=arm)
        histories = rung_histories(candidates, ledger.runs(cid, stage="search"), self.racing_seeds)
        found = next_promotion(histories, self.racing_seeds, racing.eta, self.profile.higher_is_better)
        if found is None:
            return None
        candidate_id, seed = found
        return seed, ledger.candidate(candidate_id)

    def _promotion_plan(self, seed: int, candidate: CandidateRecord) -> _Planned:
        """A promoted candidate's run on the next search seed: an ordinary search run, charged to its arm; the
        candidate keeps its first seed's score (and a control trial its Optuna value)."""
        return _Planned(candidate, seed, functools.partial(self._promotion_done, seed), promotion=True)

    def _promotion_done(self, seed: int, candidate: CandidateRecord, record: RunRecord | None) -> None:
        ledger, cid = self.runner.ledger, self.runner.campaign_id
        history = rung_histories(
            [ledger.candidate(candidate.id)],
            ledger.runs(cid, stage="search", candidate_id=candidate.id),
            self.racing_seeds,
        )[candidate.id]
        score = record.final_metric if record is not None and record.status == "ok" else None
        status = record.status if record is not None else "not run"
        reason = record.message if record is not None and record.status != "ok" else ""
        rung = self.racing_seeds.index(seed)
        key = str(candidate.meta.get("proposal_key", ""))
        if candidate.arm == "control" and key.startswith("control-"):
            # The trial keeps its first seed's value (what the sampler learnt from); its rungs go beside it.
            rungs = {"seeds": list(history.seeds), "scores": list(history.scores), "mean": history.mean()}
            self.control.annotate(int(key.removeprefix("control-")), "afr_racing", rungs)
        self._report(
            candidate.arm,
            candidate.name,
            score,
            status,
            f"rung {rung} (seed {seed}); {history.line()}",
            reason,
        )

    def run_finals(self) -> None:
        """Finalists of both arms and the baseline on fresh paired seeds: test split and held-out data."""
        finalists = select_finalists(
            self.runner.ledger,
            self.runner.campaign_id,
            self.settings.top_k,
            self.profile.higher_is_better,
            racing_seeds=self.racing_seeds or None,
        )
        plan = FinalsPlan(self.final_seeds, self.profile.heldout_settings(), self.heldout_seeds)
        run_finals(self.runner, finalists, plan, echo=self.echo, progress=self.progress)

    def _start_progress(self) -> None:
        """Count each searching arm's runs from what the ledger already holds (a resume starts part-way)."""
        for arm in ("agent", "control"):
            limit = self.runner.accountant.limits[arm].runs
            if limit:
                self.progress.start(arm, limit, self.runner.accountant.spent(arm).runs)

    def _remaining(self, arm: str) -> bool:
        return self.runner.accountant.remaining(arm).runs > 0

    # --- control arm -----------------------------------------------------------------------------

    def _control_step(self) -> None:
        """One control trial, proposed and run in this thread."""
        trial_candidate = self._control_propose(baseline=True)
        if trial_candidate is not None:
            self._control_run(*trial_candidate)

    def _control_run(self, trial: Any, candidate: CandidateRecord) -> None:
        self._run_now(self._control_plan(trial, candidate))

    def _control_propose(self, *, baseline: bool = False) -> tuple[Any, CandidateRecord] | None:
        """The next trial's candidate; None when it duplicates an earlier trial (told, nothing to run).

        A trial asked and not told is proposed again first (a resume); in a shared campaign only this
        worker's (other workers' are theirs, or taken over as candidates), and the baseline's trial 0 by
        the first process (``baseline``)."""
        flying = {str(planned.candidate.meta.get("proposal_key")) for planned, _ in self._flights["control"]}
        if self.settings.shared:
            pending = [
                t
                for t in self.control.pending()
                if f"control-{t.number}" not in flying
                and ((baseline and t.number == 0) or t.meta.get("worker") == self.worker)
            ]
        else:
            # Alone on its study, this process leaves no trial asked and unproposed (each is proposed as it
            # is asked): only those from before it started are, so the study is read for them once.
            if self._unproposed is None:
                self._unproposed = [t for t in self.control.pending() if f"control-{t.number}" not in flying]
            pending = [t for t in self._unproposed if f"control-{t.number}" not in flying]
        trial = pending[0] if pending else self.control.ask()
        candidate = self.runner.propose(
            "control",
            "optuna",
            recipe=self.baseline,
            proposal_key=f"control-{trial.number}",
            scalars=trial.scalars,
        )
        if self._unproposed:
            self._unproposed = [t for t in self._unproposed if t.number != trial.number]
        if candidate.status == "duplicate" and candidate.duplicate_of is not None:
            original = self.runner.ledger.candidate(candidate.duplicate_of)
            self.control.tell(
                trial.number,
                original.score,
                message=f"duplicate of {original.name}",
                candidate=candidate.name,
            )
            return None
        return trial, candidate

    def _control_plan(self, trial: Any, candidate: CandidateRecord) -> _Planned:
        return _Planned(candidate, self.search_seed, functools.partial(self._control_done, trial))

    def _control_done(self, trial: Any, candidate: CandidateRecord, record: RunRecord | None) -> None:
        score = record.final_metric if record is not None and record.status == "ok" else None
        self.control.tell(
            trial.number,
            score,
            message=record.message or "" if record else "not run",
            candidate=candidate.name,
        )
        self._report(
            "control",
            candidate.name,
            score,
            record.status if record else "not run",
            _scalars(trial.scalars),
            record.message if record is not None and record.status != "ok" else "",
        )

    # --- agent arm -------------------------------------------------------------------------------

    def _agent_propose(self) -> CandidateRecord | str:
        """The agent's next accepted candidate, or why the agent arm stops."""
        limit = self.settings.max_agent_calls or 10
        while not self._agent_queue:
            if self._fruitless_calls >= limit:
                return f"{self._fruitless_calls} proposal calls in a row gave nothing runnable"
            if outage := self.agent.sustained_outage():
                return outage
            if not self._ask_agent() and not self.agent.outage:  # an outage is no fruitless proposal
                self._fruitless_calls += 1
        self._fruitless_calls = 0
        return self._agent_queue.pop(0)

    def _agent_run(self, candidate: CandidateRecord) -> None:
        self._run_now(self._agent_plan(candidate))

    def _agent_plan(self, candidate: CandidateRecord) -> _Planned:
        return _Planned(candidate, self.search_seed, self._agent_done)

    def _agent_done(self, candidate: CandidateRecord, record: RunRecord | None) -> None:
        score = record.final_metric if record is not None and record.status == "ok" else None
        if record is not None and record.status != "ok":
            self._repair_runtime_failure(candidate, record.message or record.status)
        if self._agent_study is None:
            # Opened once: a study opened per candidate re-read every earlier trial from the database (its
            # cache lives with the study object), the largest part of recording an agent run.
            self._agent_study = AgentStudyRecorder(
                self.runner.ledger.url,
                study_name(self.settings.name, "agent"),
                higher_is_better=self.profile.higher_is_better,
                exclusive=not self.settings.shared,
            )
        self._agent_study.record(
            candidate.id, score, candidate.diff, str(candidate.meta.get("note", "")), candidate.name
        )
        self._record_costs()
        note = str(candidate.meta.get("note", ""))[:60]
        reason = record.message if record is not None and record.status != "ok" else ""
        self._report("agent", candidate.name, score, record.status if record else "not run", note, reason)

    def _ask_agent(self) -> bool:
        """One proposal call; True if it queued at least one runnable candidate."""
        step = self._agent_calls
        self._agent_calls += 1
        ctx = self._context(step)
        proposals = self.agent.propose(ctx, self.settings.proposals_per_step)  # an LLM call may take long
        self._halt_check()  # stopped meanwhile (the call was abandoned): nothing of it is recorded
        queued = False
        for i, proposal in enumerate(proposals):
            # In a shared campaign every worker numbers its own calls: its name keeps the keys apart.
            key = f"agent-{step}-{i}" if self.worker is None else f"agent-{self.worker}-{step}-{i}"
            candidate = self._propose(proposal, key)
            tries = 0
            while candidate.status == "rejected" and tries < self.settings.max_repairs:
                tries += 1
                fixed = self.agent.repair(ctx, proposal, list(candidate.reasons))
                self._halt_check()
                if fixed is None:
                    break
                proposal = fixed
                candidate = self._propose(proposal, f"{key}/repair-{tries}", parent=candidate.id)
            if candidate.status == "accepted":
                self._agent_queue.append(candidate)
                queued = True
        self._record_costs()
        return queued

    def _repair_runtime_failure(self, candidate: CandidateRecord, message: str) -> None:
        if self.settings.max_repairs < 1:
            return
        ctx = self._context(self._agent_calls)
        proposal = Proposal(
            candidate.source, parent_id=candidate.id, note=str(candidate.meta.get("note", ""))
        )
        fixed = self.agent.repair(ctx, proposal, [f"run-time failure: {message}"])
        if fixed is not None:
            key = f"{candidate.meta.get('proposal_key', candidate.id)}/runtime-repair"
            repaired = self._propose(fixed, key, parent=candidate.id)
            if repaired.status == "accepted":
                self._agent_queue.append(repaired)

    def _propose(self, proposal: Proposal, key: str, parent: int | None = None) -> CandidateRecord:
        candidate = self.runner.propose(
            "agent",
            self.agent_name,
            proposal.source,
            proposal_key=key,
            parent_id=proposal.parent_id if proposal.parent_id is not None else parent,
        )
        extra = {
            **({"note": proposal.note} if proposal.note else {}),
            **dict(proposal.meta),
            **({WORKER_KEY: self.worker} if self.worker is not None else {}),  # queued by this worker
        }
        if extra and not extra.keys() <= candidate.meta.keys():  # the meta too when there is no rationale
            candidate = self.runner.ledger.update_candidate(candidate.id, meta={**candidate.meta, **extra})
        return candidate

    def _record_costs(self) -> None:
        record_usage(self.runner.ledger, self.runner.campaign_id, self.agent_name, self.agent.drain_usage())

    # --- what the agent is told ------------------------------------------------------------------

    def _agent_history_records(self) -> list[CandidateRecord]:
        return self.runner.ledger.candidates(self.runner.campaign_id, arm="agent")

    def _context(self, step: int) -> AgentContext:
        ledger, cid = self.runner.ledger, self.runner.campaign_id
        records = self._agent_history_records()
        history = tuple(_history_item(c) for c in records)
        best = tuple(
            _history_item(c)
            for c in ledger.best_candidates(cid, "agent", 5, higher_is_better=self.profile.higher_is_better)
        )
        failures = tuple(_history_item(c) for c in ledger.recent_failures(cid, "agent", 5))
        baseline = [
            c for c in ledger.candidates(cid, arm="control") if c.meta.get("proposal_key") == "control-0"
        ]
        return AgentContext(
            profile_name=self.profile.name,
            profile_description=yaml.safe_dump(self.profile.describe(), sort_keys=False),
            surface_doc=self.surface_doc,
            baseline=self.baseline,
            higher_is_better=self.profile.higher_is_better,
            metric=self.profile.metric_name,
            baseline_score=baseline[0].score if baseline else None,
            best=best,
            recent_failures=failures,
            history=history,
            step=step,
            brief=self.brief,
        )

    # --- reporting -------------------------------------------------------------------------------

    def status(self) -> dict[str, ArmStatus]:
        ledger, cid = self.runner.ledger, self.runner.campaign_id
        out = {}
        for arm in ("agent", "control"):
            cands = ledger.candidates(cid, arm=arm)
            status = ArmStatus(
                runs=self.runner.accountant.spent(arm).runs,
                failures=sum(c.status == "failed" for c in cands),
                rejected=sum(c.status == "rejected" for c in cands),
                duplicates=sum(c.status == "duplicate" for c in cands),
            )
            best = ledger.best_candidates(cid, arm, 1, higher_is_better=self.profile.higher_is_better)
            if best:
                status.best, status.best_candidate = best[0].score, best[0].name
            out[arm] = status
        return out

    def _report(
        self, arm: str, name: str, score: float | None, status: str, note: str, reason: str = ""
    ) -> None:
        """One console line per run (named as everywhere else: ``agent#30``); a failed run's line ends with
        its reason (one line, cut short)."""
        spent = self.runner.accountant.spent(arm).runs
        value = f"{score:.4f}" if score is not None and math.isfinite(score) else "—"
        line = (
            f"[{arm:>7}] run {spent:>3}/{self.runner.accountant.limits[arm].runs}  {name:<12} "
            f"{status:<7} val {self.profile.metric_name} {value}  {note}"
        )
        if status != "ok":
            why = " ".join((reason or "no reason recorded").split())
            line += f"  -- {why[:200]}{'…' if len(why) > 200 else ''}"
        self.echo(line)
        self.progress.update(arm, spent)


def _history_item(c: CandidateRecord) -> HistoryItem:
    return HistoryItem(
        candidate_id=c.id,
        name=c.name,
        status=c.status,
        score=c.score,
        source=c.source,
        diff=c.diff,
        reasons=tuple(c.reasons),
        parent_id=c.parent_id,
        note=str(c.meta.get("note", "")),
    )


def _scalars(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.3g}" for k, v in sorted(values.items()))


def join_settings(
    url: str,
    campaign: str,
    *,
    directory: Path,
    data_dir: str | None,
    workers: int = 2,
    executor: str = "local",
    ray_address: str | None = None,
    num_gpus: float = 0.0,
) -> CampaignSettings:
    """The settings of a worker joining the shared campaign ``campaign`` in the database at ``url`` (``afr
    worker``), read from what the campaign recorded when it started: profile as built, agent, control,
    budgets, seeds and run limits. ``directory`` holds this worker's artifacts; ``data_dir`` is this
    machine's data folder (None: the default)."""
    config = joined_campaign(url, campaign)
    finals, top_k, final_seeds, heldout_seeds = config["finals"]
    limits = config.get("runner_limits") or {}
    return CampaignSettings(
        name=campaign,
        directory=directory,
        profile=str(config["profile"]),
        profile_cfg=dict(config["profile_cfg"]),
        agent_cfg=dict(config["agent_cfg"]),
        control_cfg=dict(config["control_cfg"]),
        runs_per_arm=int(config["runs_per_arm"]),
        agent_runs=config.get("agent_runs"),
        seed=int(config["seed"]),
        data_dir=data_dir,
        runner=RunnerSettings(
            workers=workers,
            timeout_s=float(limits.get("timeout_s", 600)),
            memory_mb=int(limits.get("memory_mb", 4096)),
            executor=executor,
            ray_address=ray_address,
            num_gpus=num_gpus,
        ),
        proposals_per_step=int(config["proposals_per_step"]),
        max_repairs=int(config["max_repairs"]),
        finals=bool(finals),
        top_k=int(top_k),
        final_seeds=final_seeds,
        heldout_seeds=heldout_seeds,
        evaluation_cfg=dict(config.get("evaluation_cfg") or {}),
        storage=url,
        shared=True,
        join=True,
        stale_after_s=float(config.get("stale_after_s", 60.0)),
    )


def check_candidate(settings: CampaignSettings, source: str, label: str) -> None:
    """Refuse, before anything is written, a recipe file the campaign's validator would reject
    (``afr evaluate`` checks its given file with the exact surface table the campaign will use)."""
    profile = make_profile(settings.profile, settings.profile_cfg, data_dir=settings.data_dir).for_campaign()
    table = surface_table(profile, baseline=recipe_source(profile.baseline))
    report = validate(source, table, filename=Path(label).name)
    if not report.ok:
        raise ConfigError(
            f"the recipe {label} breaks the recipe surface of profile {profile.name!r} ({report.in_brief()})",
            where="recipe=",
            fix="fix the file (`python -m afr.surface validate <file>` lists every violation)",
        )
