"""Candidate runner: validate → de-duplicate → reserve budget → run sandboxed → record → settle.

Every candidate of every arm goes through this one path, so both arms are validated, charged and
recorded the same way. Each step is keyed deterministically (``proposal_key`` for a candidate,
``run_key`` for a run), so re-running the same campaign command after a crash re-attaches to what
is already in the ledger: finished runs are neither lost nor run or charged again, and a run that
was reserved but never finished is run once, under its original reservation.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..budget import ArmBudget, BudgetAccountant
from ..engine import RunResult
from ..errors import storage_error
from ..evaluation import PENDING_KEY
from ..ledger import CandidateRecord, Ledger, RunRecord
from ..profiles import Profile, import_root
from ..recipe import RecipeSource, recipe_source
from ..sandbox import RUN_NICENESS, RayPool, RunJob, RunPool, SandboxClosed, SandboxPool, check_num_gpus
from ..surface import SurfaceTable, is_legacy_hash, normalized_ast_hash, surface_table, validate

__all__ = ["CandidateRunner", "RunnerSettings", "StartedRun", "make_pool", "run_key"]

_UNHASHABLE = frozenset({"syntax", "size-bytes", "size-nodes", "size-depth", "unverifiable"})
FINISHED = ("ok", "failed", "timeout", "crashed", "memory")


def _quiet_tensorboard_threads() -> None:
    """TensorBoard writes event files in a thread of its own, which re-raises a failed write (a full disk)
    and so prints a traceback; the same error then reaches the caller, which reports it in one line. Only
    that thread's errors are silenced, once per process."""
    global _TB_HOOKED
    if _TB_HOOKED:
        return
    _TB_HOOKED = True
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if type(args.thread).__name__ == "_AsyncWriterThread" and isinstance(args.exc_value, OSError):
            return
        previous(args)

    threading.excepthook = hook


_TB_HOOKED = False


def run_key(arm: str, candidate_id: int, stage: str, seed: int) -> str:
    return f"{arm}/cand-{candidate_id}/{stage}/seed-{seed}"


@dataclass
class StartedRun:
    """A run :meth:`CandidateRunner.start` began (``future``: its sandbox outcome, not yet recorded), or one
    with nothing left to run (``record``: its earlier end, or None for a candidate that does not run)."""

    candidate: CandidateRecord
    seed: int
    stage: str
    setting: str
    promotion: bool
    key: str = ""
    run_id: int | None = None
    future: Future[RunResult] | None = None
    record: RunRecord | None = None


@dataclass(frozen=True)
class RunnerSettings:
    """Per-run resource limits and sandbox size."""

    workers: int = 2
    timeout_s: float = 120.0
    memory_mb: int = 4096
    devices: tuple[str, ...] = ()
    """``CUDA_VISIBLE_DEVICES`` per worker (worker i: ``devices[i % n]``); empty: the environment's."""
    executor: str = "local"
    """``local``: one :class:`SandboxPool` on this machine; ``ray``: a :class:`RayPool` on a Ray cluster."""
    ray_address: str | None = None
    """executor=ray: the cluster to join (``ray.init(address=...)``); None: a local Ray instance."""
    num_gpus: float = 0.0
    """executor=ray: GPUs per run (a fraction below 1 lets runs share a GPU)."""
    niceness: int = RUN_NICENESS
    """executor=local: how much nicer each run is than this process (0: the same CPU priority)."""

    def __post_init__(self) -> None:
        if self.executor not in ("local", "ray"):
            raise ValueError(f"executor must be 'local' or 'ray', got {self.executor!r}")
        check_num_gpus(self.num_gpus)
        if self.executor == "local" and (self.num_gpus or self.ray_address is not None):
            raise ValueError(
                "num_gpus and ray_address are for executor=ray; executor=local takes devices=[0,1] for GPUs"
            )
        if self.executor == "ray" and self.devices:
            raise ValueError(
                "devices is for executor=local; with executor=ray, Ray assigns GPUs: use num_gpus"
            )


def make_pool(settings: RunnerSettings) -> RunPool:
    """The sandbox ``settings`` ask for: a local :class:`SandboxPool`, or a :class:`RayPool` on a cluster."""
    if settings.executor == "ray":
        return RayPool(settings.workers, address=settings.ray_address, num_gpus=settings.num_gpus)
    return SandboxPool(settings.workers, devices=settings.devices or None, niceness=settings.niceness)


class CandidateRunner:
    """Runs the candidates of one campaign through the surface, the accountant, the sandbox and the ledger."""

    def __init__(
        self,
        campaign_dir: str | Path,
        *,
        name: str,
        profile: Profile,
        agent: str,
        limits: Mapping[str, ArmBudget],
        baseline: RecipeSource | None = None,
        table: SurfaceTable | None = None,
        settings: RunnerSettings = RunnerSettings(),
        config: Mapping[str, Any] | None = None,
        ledger: Ledger | None = None,
        pool: RunPool | None = None,
        campaign_id: int | None = None,
    ) -> None:
        """``profile`` is the campaign's, built once with every override applied; ``baseline`` (default: the
        profile's) is what the control arm runs and what candidates are diffed against; ``table`` (default:
        built from both) is what every candidate is validated against; ``pool`` (default: one started on first
        use) is a sandbox pool of ``settings.workers`` workers (``settings.executor``: local or Ray), closed
        with the runner; ``campaign_id``: join that (shared) campaign of the ledger, instead of starting or
        resuming ``name`` by its config."""
        self.dir = Path(campaign_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.profile = profile
        self.baseline = baseline if baseline is not None else recipe_source(profile.baseline)
        self.table = table if table is not None else surface_table(profile, baseline=self.baseline)
        self.settings = settings
        self.ledger = ledger or Ledger.for_campaign_dir(self.dir)
        full_config = {
            "profile": profile.name,
            "profile_cfg": dict(profile.cfg),
            "agent": agent,
            "limits": {arm: vars(b) for arm, b in limits.items()},
            **dict(config or {}),
        }
        self.campaign_id = (
            campaign_id
            if campaign_id is not None
            else self.ledger.start_campaign(name, profile.name, agent, full_config)
        )
        self.accountant = BudgetAccountant(self.ledger, self.campaign_id, dict(limits))
        self.run_client_steps = self.profile.client_steps_per_run
        self._pool: RunPool | None = pool
        self._closed = False
        self._heldout_profiles: dict[str, Profile] = {}
        self._rehashed: dict[int, str] = {}
        # What propose() needs of earlier candidates, read incrementally (rows are added by both arm threads
        # and, in a shared campaign, other processes; a row's proposal key and hash never change).
        self._index_lock = threading.Lock()
        self._indexed_up_to = 0
        self._by_proposal_key: dict[tuple[str, str], int] = {}
        self._legacy_rows: list[CandidateRecord] = []
        # A text's checks (validation, hash, diff) are pure functions of it: the control arm proposes the
        # baseline's one text with new scalars every trial.
        self._checked: OrderedDict[tuple[str, str | None], _Checked] = OrderedDict()

    # --- lifecycle -------------------------------------------------------------------------------

    @property
    def pool(self) -> RunPool:
        """The sandbox pool (started on first use); :class:`SandboxClosed` once the runner is closed."""
        if self._closed:
            # Never a fresh pool behind a close(): an arm thread still finishing its step after a Ctrl-C
            # must find no sandbox, not start one.
            raise SandboxClosed("the campaign's sandbox is closed")
        if self._pool is None:
            self._pool = make_pool(self.settings)
        return self._pool

    def close(self) -> None:
        """Stop the sandbox; runs in flight end :class:`SandboxClosed` (interrupted: they stay reserved and
        are run again by the same command). Safe from any thread, any number of times."""
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> CandidateRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- candidates ------------------------------------------------------------------------------

    def propose(
        self,
        arm: str,
        agent: str,
        source: str | None = None,
        *,
        proposal_key: str,
        recipe: RecipeSource | None = None,
        parent_id: int | None = None,
        scalars: Mapping[str, float] | None = None,
    ) -> CandidateRecord:
        """Record a candidate: validated, hashed, diffed; the same ``proposal_key`` returns the earlier row.

        ``source`` is an agent's recipe file; ``recipe`` a recipe file as it stands (the control arm's
        baseline with tuned ``scalars``): a shipped one is validated as a file of the ``afr.recipe`` package
        and runs as the shipped class.
        """
        known = self._index_candidates().get((arm, proposal_key))
        if known is not None:
            return self.ledger.candidate(known)
        if (source is None) == (recipe is None):
            raise ValueError("give exactly one of source and recipe")
        text = recipe.text if recipe is not None else source
        assert text is not None
        # Nothing a candidate's text does may crash the campaign: any error in validating, diffing or
        # hashing it becomes its recorded rejection (the validator itself already rejects what it cannot
        # check; this is the second line).
        reasons: list[str]
        try:
            text.encode("utf-8")
            unencodable = None
        except UnicodeEncodeError as exc:  # lone surrogates: not storable, not a Python file on disk either
            unencodable = (
                f"[syntax] line 1, col 1: the file is not valid UTF-8 text ({exc.reason} at {exc.start})"
            )
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        checked = self._check(text, recipe.package if recipe is not None else None, unencodable)
        ok, reasons, diff, ast_hash = checked.ok, list(checked.reasons), checked.diff, checked.ast_hash
        if ast_hash.startswith("raw:") and not ok:
            ast_hash = f"{ast_hash}:{proposal_key}"  # as before for unparsable files: never a duplicate
        also_match = self._legacy_copies(ast_hash) if not ast_hash.startswith("raw:") else ()
        meta: dict[str, Any] = {"proposal_key": proposal_key}
        if recipe is not None:
            meta.update({"builtin": recipe.shipped} if recipe.shipped else {"class_name": recipe.class_name})
        candidate_id = self.ledger.add_candidate(
            self.campaign_id,
            arm=arm,
            agent=agent,
            source=text,
            diff=diff,
            ast_hash=ast_hash,
            parent_id=parent_id,
            scalars=dict(scalars) if scalars else None,
            status="accepted" if ok else "rejected",
            reasons=reasons,
            meta=meta,
            also_match=also_match,
        )
        record = self.ledger.candidate(candidate_id)
        # the diff names the file by the candidate's one name, known only now that the ledger gave its id
        named = diff.replace(f"+++ {_UNNAMED}/", f"+++ {record.name}/", 1)
        return record if named == diff else self.ledger.update_candidate(candidate_id, diff=named)

    def _check(self, text: str, package: str | None, unencodable: str | None) -> _Checked:
        """Validation, diff and hash of a candidate's text (remembered for the last few texts)."""
        key = (text, package)
        with self._index_lock:
            if unencodable is None and key in self._checked:
                self._checked.move_to_end(key)
                return self._checked[key]
        try:
            report = validate(text, self.table, package=package)
            ok, reasons = report.ok, [str(v) for v in report.violations]
            # Only a tree within the size limits is worth hashing (and dumping it cannot recurse too deep).
            hashable = not set(report.rules) & _UNHASHABLE
        except Exception as exc:  # noqa: BLE001
            ok, hashable = False, False
            reasons = [f"[unverifiable] the validator failed on this file: {_brief(exc)}"]
        if unencodable is not None:
            ok, hashable, reasons = False, False, [unencodable, *reasons]
        diff = _diff(self.baseline.text, text, Path(self.baseline.label).name, _UNNAMED, self.table.max_bytes)
        try:
            ast_hash = normalized_ast_hash(text) if hashable else _raw_hash(text)
        except Exception:  # noqa: BLE001 -- e.g. RecursionError on a tree the validator let through
            ast_hash = _raw_hash(text)
        checked = _Checked(ok, tuple(reasons), diff, ast_hash)
        if unencodable is None:
            with self._index_lock:
                self._checked[key] = checked
                while len(self._checked) > _CHECKED_TEXTS:
                    self._checked.popitem(last=False)
        return checked

    def _index_candidates(self) -> dict[tuple[str, str], int]:
        """``(arm, proposal key) -> candidate id`` of every candidate so far (the first with that key),
        taking in only the rows added since the last call."""
        with self._index_lock:
            for row in self.ledger.candidates(self.campaign_id, after_id=self._indexed_up_to):
                key = row.meta.get("proposal_key")
                if key is not None:
                    self._by_proposal_key.setdefault((row.arm, str(key)), row.id)
                if row.status != "duplicate" and is_legacy_hash(row.ast_hash):
                    self._legacy_rows.append(row)
                self._indexed_up_to = max(self._indexed_up_to, row.id)
            return self._by_proposal_key

    def _legacy_copies(self, ast_hash: str) -> list[str]:
        """The stored (legacy) hashes of earlier candidates whose code hashes to ``ast_hash`` now.

        A ledger written before the hash ignored renaming holds the legacy hash; on resume, each such
        candidate's code is hashed again (once) so that a copy of it — renamed or not — is still a
        duplicate. A new ledger holds no legacy hash: nothing to do."""
        matches = []
        # propose() has just taken in the newest rows (_index_candidates); rows written now are never legacy
        for row in list(self._legacy_rows):
            if row.id not in self._rehashed:
                try:
                    self._rehashed[row.id] = normalized_ast_hash(row.source)
                except Exception:  # noqa: BLE001 -- e.g. RecursionError: that row stays matched as it was
                    self._rehashed[row.id] = ""
            if self._rehashed[row.id] == ast_hash:
                matches.append(row.ast_hash)
        return matches

    # --- runs ------------------------------------------------------------------------------------

    def run(
        self,
        candidate: CandidateRecord,
        seed: int,
        stage: str = "search",
        *,
        setting: str = "",
        profile_overrides: Mapping[str, Any] | None = None,
        promotion: bool = False,
    ) -> RunRecord | None:
        """Run an accepted candidate once (sandboxed) and record it; None for rejected or duplicates.

        ``stage``: ``search`` (train on fit, score on validation; charged to the candidate's arm),
        ``final`` (whole train split, fresh seed) or ``heldout`` (``profile_overrides`` name a held-out
        ``setting``); the last two are charged to the ``finals`` account.

        ``promotion``: a seed-racing search run of a candidate that already has its first search run (see
        ``afr/evaluation/_racing.py``); charged like any search run, it leaves the candidate's status (``ok``)
        and score (its first seed's) as they were, and clears its pending-promotion mark.
        """
        started = self.start(
            candidate, seed, stage, setting=setting, profile_overrides=profile_overrides, promotion=promotion
        )
        return self.finish(started)

    def start(
        self,
        candidate: CandidateRecord,
        seed: int,
        stage: str = "search",
        *,
        setting: str = "",
        profile_overrides: Mapping[str, Any] | None = None,
        promotion: bool = False,
    ) -> StartedRun:
        """The first half of :meth:`run`: reserve, record the start, hand the job to the sandbox — and return
        at once. :meth:`finish` waits for the outcome and records it, so an arm can decide its next run while
        this one trains (the arm's own decisions never see a result before it is recorded)."""
        if candidate.status not in ("accepted", "running", "ok", "failed"):
            return StartedRun(candidate, seed, stage, setting, promotion)
        arm = "finals" if stage != "search" else candidate.arm
        key = run_key(candidate.arm, candidate.id, f"{stage}-{setting}" if setting else stage, seed)
        done = self.ledger.run_by_key(self.campaign_id, key)
        if done is not None and done.status in FINISHED:
            self.accountant.settle(key, _outcome(done.status))  # idempotent; settles a crash leftover
            if stage == "search" and self.ledger.candidate(candidate.id).status == "running":
                # the run ended but its candidate was never told (the process stopped in between)
                self._record_search(candidate, done.status, done.final_metric, done.message or "", promotion)
            return StartedRun(candidate, seed, stage, setting, promotion, key=key, record=done)
        if self._closed or (self._pool is not None and self._pool.closed):
            raise SandboxClosed("the campaign's sandbox is closed")  # stopping: reserve nothing more
        self.accountant.reserve(arm, key, self.run_client_steps)
        split = {"search": "val", "final": "test"}.get(stage, f"heldout:{setting}")
        run_id = self.ledger.start_run(self.campaign_id, candidate.id, key, seed, stage, split)
        if stage == "search":
            self.ledger.update_candidate(candidate.id, status="running")
        cfg = {**self.profile.cfg, **dict(profile_overrides or {})}
        job = self._job(candidate, key, seed, "search" if stage == "search" else "final", cfg)
        try:
            future = self.pool.submit(job)
        except SandboxClosed:
            raise
        except Exception as exc:  # noqa: BLE001 -- finish() handles it as it handles the run's own errors
            future = Future()
            future.set_exception(exc)
        return StartedRun(candidate, seed, stage, setting, promotion, key=key, run_id=run_id, future=future)

    def finish(self, started: StartedRun) -> RunRecord | None:
        """Wait for a run :meth:`start` began, then record it: artifacts, the run's row, its charge settled
        and, for a search run, the candidate's status and score. A run that had ended already (a resume) or
        that had nothing to run returns its record (or None) as it is."""
        if started.future is None or started.run_id is None:
            return started.record
        candidate, stage, setting, seed = started.candidate, started.stage, started.setting, started.seed
        try:
            outcome = started.future.result()
            run_name = f"{stage}-{setting}-seed-{seed}" if setting else f"{stage}-seed-{seed}"
            artifacts = self._save_artifacts(candidate, run_name, outcome)
            if outcome.curve:
                artifacts["tensorboard"] = self._write_tensorboard(candidate.name, run_name, outcome.curve)
            if outcome.engine_path:  # how the weights were made: the batched or the per-client engine path
                artifacts["engine"] = ": ".join(filter(None, (outcome.engine_path, outcome.engine_note)))
        except SandboxClosed:
            # Interrupted (Ctrl-C, SIGTERM): the run has no outcome. It stays started and reserved, never
            # recorded as an end nor settled, and the same command runs it again under its reservation.
            raise
        except Exception as exc:  # noqa: BLE001 -- a result the parent cannot load is the candidate's failure
            if storage_error(exc) is not None:
                # A full disk or read-only folder is not the candidate's failure: the run stays open (not
                # charged as a crash) and the same command re-runs it once the disk has room.
                raise
            outcome = RunResult(
                status="crashed", message=f"the run's result could not be loaded: {_brief(exc)}"
            )
            artifacts = {}
        final = outcome.curve[-1].get("val") if outcome.curve else None
        self.ledger.finish_run(
            started.run_id,
            status=outcome.status,
            per_round=outcome.curve,
            final_metric=final if final is not None and math.isfinite(final) else None,
            runtime_s=outcome.wall_s,
            steps=sum(outcome.steps_per_client),
            bytes_up=outcome.bytes_up,
            bytes_down=outcome.bytes_down,
            artifacts=artifacts,
            message=outcome.message,
        )
        self.accountant.settle(started.key, _outcome(outcome.status))
        if stage == "search":
            self._record_search(candidate, outcome.status, final, outcome.message, started.promotion)
        return self.ledger.run(started.run_id)

    def _record_search(
        self, candidate: CandidateRecord, status: str, final: float | None, message: str, promotion: bool
    ) -> None:
        """The candidate's status and score from its search run (a promotion run: back to ``ok``, unmarked;
        its outcome is its run's, read by the racing rule from the runs)."""
        if promotion:
            meta = {k: v for k, v in self.ledger.candidate(candidate.id).meta.items() if k != PENDING_KEY}
            self.ledger.update_candidate(candidate.id, status="ok", meta=meta)
            return
        ok = status == "ok" and final is not None and math.isfinite(final)
        reasons = list(candidate.reasons) + ([] if ok else [f"{status}: {message}"])
        self.ledger.update_candidate(
            candidate.id, status="ok" if ok else "failed", score=final if ok else None, reasons=reasons
        )

    def _job(
        self, candidate: CandidateRecord, key: str, seed: int, stage: str, cfg: dict[str, Any]
    ) -> RunJob:
        builtin = candidate.meta.get("builtin")
        return RunJob(
            job_id=key,
            profile=self.profile.name,
            profile_cfg=cfg,
            data_dir=str(self.profile.data_dir) if self.profile.data_dir is not None else None,
            recipe_source=None if builtin else candidate.source,
            recipe_name=builtin,
            class_name=candidate.meta.get("class_name"),
            scalars=dict(candidate.scalars or {}),
            seed=seed,
            stage=stage,
            timeout_s=self.settings.timeout_s,
            memory_mb=self.settings.memory_mb,
            import_roots=tuple(filter(None, [import_root(type(self.profile))])),
        )

    def heldout_profile(self, setting: str, overrides: Mapping[str, Any]) -> Profile:
        """The campaign's profile with a held-out setting's overrides (built once per setting)."""
        if not setting:
            return self.profile
        if setting not in self._heldout_profiles:
            self._heldout_profiles[setting] = self.profile.with_overrides(**overrides)
        return self._heldout_profiles[setting]

    def _save_artifacts(
        self, candidate: CandidateRecord, run_name: str, outcome: RunResult
    ) -> dict[str, str]:
        """``artifacts/<candidate name>/<run>.pt`` and, next to the weights, the recipe file that made them
        (``recipe.py``; a control trial's tuned scalars in ``scalars.json``): a finalist can be rerun or read
        from the campaign folder alone."""
        if outcome.status != "ok" or not outcome.state_dict:
            return {}
        folder = Path("artifacts") / candidate.name
        relative = folder / f"{run_name}.pt"
        path = self.dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".pt.tmp")
        # Serialised in memory, then written as plain bytes: torch.save straight to a file reports a full
        # disk as an opaque RuntimeError ("unexpected pos ..."), a plain write as OSError(ENOSPC).
        buffer = io.BytesIO()
        torch.save({"model_variant": outcome.model_variant, "state_dict": outcome.state_dict}, buffer)
        try:
            tmp.write_bytes(buffer.getbuffer())
        except OSError:
            tmp.unlink(missing_ok=True)  # give the space back
            raise
        tmp.replace(path)
        saved = {"weights": str(relative), "recipe": str(folder / "recipe.py")}
        _write_once(self.dir / folder / "recipe.py", candidate.source)
        if candidate.scalars:
            saved["scalars"] = str(folder / "scalars.json")
            _write_once(self.dir / folder / "scalars.json", json.dumps(candidate.scalars, indent=2) + "\n")
        return saved

    def _write_tensorboard(self, name: str, run_name: str, curve: list[dict[str, Any]]) -> str:
        """``tb/<candidate name>/<run>``: TensorBoard lists each run under the candidate's one name."""
        from torch.utils.tensorboard import SummaryWriter

        _quiet_tensorboard_threads()

        relative = Path("tb") / name / run_name
        with SummaryWriter(log_dir=str(self.dir / relative)) as writer:
            for record in curve:
                step = record["round"]
                loss, val = record.get("train_loss"), record.get("val")
                if loss is not None and math.isfinite(loss):
                    writer.add_scalar("train/loss", loss, step)
                if val is not None and math.isfinite(val):
                    writer.add_scalar(f"val/{self.profile.metric_name}", val, step)
        return str(relative)

    def spent(self) -> dict[str, ArmBudget]:
        return {arm: self.accountant.spent(arm) for arm in ("agent", "control", "finals")}


@dataclass(frozen=True)
class _Checked:
    """What :meth:`CandidateRunner.propose` finds of a candidate's text (see ``_check``)."""

    ok: bool
    reasons: tuple[str, ...]
    diff: str
    ast_hash: str


_CHECKED_TEXTS = 64
"""Texts whose checks a runner remembers (each a recipe file of a few kB)."""

_UNNAMED = "candidate"
"""The diff's name for a candidate file until the ledger gives its id (then ``agent#30/recipe.py``)."""


def _diff(baseline: str, text: str, base_name: str, name: str, max_bytes: int) -> str:
    """The candidate's diff against the baseline; none for a file over the size cap (difflib is quadratic)."""
    if len(text) > max_bytes:
        return f"(no diff: the file has {len(text)} characters, over the size cap of {max_bytes})\n"
    try:
        lines = difflib.unified_diff(
            baseline.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"baseline/{base_name}",
            tofile=f"{name}/recipe.py",
        )
        return "".join(lines)
    except Exception as exc:  # noqa: BLE001 -- a diff is informative only
        return f"(no diff: {type(exc).__name__})\n"


def _write_once(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it already holds it (each run of a candidate saves the same file)."""
    if path.exists() and path.read_text(encoding="utf-8", errors="replace") == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _brief(exc: BaseException, limit: int = 500) -> str:
    """``Type: message``, cut to ``limit`` characters (a message can be as large as the candidate wants)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[:limit] + "…"


def _raw_hash(text: str) -> str:
    """A rejected file's hash: of its bytes (its AST may not exist or be too deep to dump)."""
    return "raw:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _outcome(status: str) -> str:
    return {"memory": "failed"}.get(status, status)
