"""The finals, scheduled by the campaign: every finalist on the same fresh final seeds (paired), trained on
the training clients' whole train split, evaluated by this (parent) process on the test split and on the
held-out data; held-out settings that change the task get runs of their own, on the same seeds.

Training runs in the sandbox, charged to the accountant's ``finals`` account; workers never hold test or
held-out data. :mod:`afr.evaluation` then only reads the numbers the ledger holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..evaluation import Finalist
from ..ledger import RunRecord
from ..profiles import Profile
from ._progress import CampaignProgress, print_line
from ._runner import FINISHED, CandidateRunner

__all__ = ["FinalsPlan", "run_finals"]


@dataclass(frozen=True)
class FinalsPlan:
    """Which seeds and held-out settings every finalist is evaluated on (the same for all: paired)."""

    seeds: list[int]
    heldout: Mapping[str, Mapping[str, Any]]
    """Setting -> profile overrides; an empty mapping: evaluated on the final runs' weights."""
    heldout_seeds: list[int]
    """Seeds of the settings that need runs of their own (normally every final seed)."""


@dataclass(frozen=True)
class _Planned:
    """One planned run of the finals: a finalist on a seed, on the test split or a held-out setting."""

    finalist: Finalist
    seed: int
    setting: str = ""
    """'' for a final run (test split); else the held-out setting with runs of its own."""
    overrides: Mapping[str, Any] | None = None


def run_finals(
    runner: CandidateRunner,
    finalists: list[Finalist],
    plan: FinalsPlan,
    *,
    echo: Callable[[str], None] = print_line,
    progress: CampaignProgress | None = None,
    workers: int | None = None,
) -> None:
    """Run and evaluate every finalist on every final seed and held-out setting; results go to the ledger.

    The planned runs train in parallel, ``workers`` at a time (default: the runner's sandbox workers), with
    one more queued behind each, so no worker waits for another finalist, an arm or the parent's recording.
    This thread evaluates each run's weights and prints its line in plan order as the results arrive: the
    console, the ledger's content (run keys, scores, evaluations, charges) and a resume do not depend on which
    run ended first. One console line per final run (``[ finals] run 3/25 agent#30 seed 7 test accuracy
    0.8123``) and one per finalist when its runs are done; ``progress`` counts the runs (a resume starts
    part-way).

    A stop (Ctrl-C, SIGTERM: the sandbox closes) ends the runs in flight with ``SandboxClosed``: they stay
    reserved, the queued ones are never started, and the same command runs them again."""
    metric = runner.profile.metric_name
    on_final_runs = any(not overrides for overrides in plan.heldout.values())  # held-out clients
    settings = [(s, o) for s, o in plan.heldout.items() if o]  # settings that need runs of their own
    planned = [
        run
        for f in finalists
        for run in (
            *(_Planned(f, seed) for seed in plan.seeds),
            *(_Planned(f, seed, s, o) for s, o in settings for seed in plan.heldout_seeds),
        )
    ]
    total = len(planned)
    names = {f.candidate.id for f in finalists}
    done = sum(
        r.candidate_id in names and r.status in FINISHED
        for r in runner.ledger.runs(runner.campaign_id)
        if r.stage in ("final", "heldout")
    )
    if progress is not None:
        progress.start("finals", total, min(done, total))
    count = 0

    def tell(name: str, seed: int, record: RunRecord | None, what: str, value: float) -> None:
        nonlocal count
        count += 1
        status = record.status if record is not None else "not run"
        shown = f"{value:.4f}" if math.isfinite(value) else "—"
        line = f"[ finals] run {count:>3}/{total}  {name:<12} seed {seed:<5} {what} {metric} {shown}"
        if status != "ok":
            why = " ".join(((record.message if record else "") or "no reason recorded").split())
            line += f"  {status} -- {why[:200]}"
        elif record is not None and not math.isfinite(value):  # ran, but its weights did not evaluate
            errors = [e.get("error") for e in (runner.ledger.run(record.id).evaluation or {}).values()]
            why = " ".join((next((e for e in errors if e), None) or "not evaluated").split())
            line += f"  -- {why[:200]}"
        echo(line)
        if progress is not None:
            progress.update("finals", max(count, min(done, total)))

    test: list[float] = []

    def evaluate(index: int, record: RunRecord | None) -> None:
        """Evaluate one finished run (this thread only: the parent's data and models stay in one thread)."""
        run = planned[index]
        name = run.finalist.name
        if not run.setting:
            test.append(_evaluate(runner, record, runner.profile, "test"))
            if on_final_runs:
                _evaluate(runner, record, runner.profile, "heldout")
            tell(name, run.seed, record, "test", test[-1])
        else:
            profile = runner.heldout_profile(run.setting, run.overrides or {})
            part = "heldout" if profile.heldout_clients else "test"
            tell(name, run.seed, record, run.setting, _evaluate(runner, record, profile, part))
        if index + 1 == len(planned) or planned[index + 1].finalist is not run.finalist:  # its last run
            finite = [v for v in test if math.isfinite(v)]
            mean = sum(finite) / len(finite) if finite else math.nan
            echo(f"[ finals] {name:<12} test {metric} mean {mean:.4f} over {len(finite)} seeds")
            test.clear()

    def train(run: _Planned) -> RunRecord | None:
        c = run.finalist.candidate
        if not run.setting:
            return runner.run(c, run.seed, stage="final")
        return runner.run(c, run.seed, stage="heldout", setting=run.setting, profile_overrides=run.overrides)

    # Two runs per sandbox worker: while a thread records a result (weights, curves, the ledger), the run it
    # had queued behind a busy worker is already in the sandbox, which starts it the moment a worker frees.
    threads = 2 * max(1, workers if workers is not None else runner.settings.workers)
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="finals")
    futures: list[Future[RunRecord | None]] = []
    try:
        # Submitted in plan order: the first ``threads`` runs start at once, each next one as a run ends.
        futures = [pool.submit(train, run) for run in planned]
        waiting: set[Future[RunRecord | None]] = set(futures)
        for index in range(len(planned)):
            while not futures[index].done():
                finished, waiting = wait(waiting, return_when=FIRST_COMPLETED)
                # A run that raised (interrupted: SandboxClosed; a full disk) stops the finals now, not
                # when its turn in the plan comes.
                for future in finished:
                    if future.exception() is not None:
                        raise future.exception()  # type: ignore[misc]
            evaluate(index, futures[index].result())
    except BaseException:
        # Nothing queued starts any more; the runs in flight end at once (their sandbox closes) and stay
        # reserved: the same command runs them again. The campaign's own stop does the same.
        for future in futures:
            future.cancel()
        runner.close()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _evaluate(runner: CandidateRunner, record: RunRecord | None, profile: Profile, part: str) -> float:
    """The parent's metric of a run's weights on ``part`` (NaN for a failed run), kept in the ledger."""
    if record is None or record.status != "ok" or not record.artifacts or "weights" not in record.artifacts:
        return math.nan
    done = (record.evaluation or {}).get(part)
    if done is not None:
        return math.nan if done.get("mean") is None else float(done["mean"])
    try:
        saved = torch.load(Path(runner.dir) / record.artifacts["weights"], weights_only=True)
        model = profile.build_model(saved["model_variant"])
        # strict: weights whose keys or shapes differ from the variant's (an architecture the candidate
        # changed) are that run's failure, recorded below, never the campaign's crash on every resume
        model.load_state_dict(saved["state_dict"])
    except Exception as exc:  # noqa: BLE001
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        runner.ledger.record_evaluation(
            record.id,
            part,
            {"metric": profile.metric_name, "mean": None, "error": f"weights not loadable: {reason}"},
        )
        return math.nan
    data = profile.heldout_data() if part == "heldout" else profile.data("test")
    try:
        result = profile.evaluate(model, data)
    except Exception as exc:  # noqa: BLE001 -- e.g. a forward pass the returned weights break
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        runner.ledger.record_evaluation(
            record.id,
            part,
            {"metric": profile.metric_name, "mean": None, "error": f"evaluation failed: {reason}"},
        )
        return math.nan
    runner.ledger.record_evaluation(
        record.id, part, {"metric": profile.metric_name, "mean": result.mean, "per_client": result.per_client}
    )
    return result.mean
