"""The finals, scheduled by the campaign: every finalist on the same fresh final seeds (paired), trained on
the training clients' whole train split, evaluated by this (parent) process on the test split and on the
held-out data; held-out settings that change the task get runs of their own, on the same seeds.

Training runs in the sandbox, charged to the accountant's ``finals`` account; workers never hold test or
held-out data. :mod:`afr.evaluation` then only reads the numbers the ledger holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..evaluation import Finalist
from ..ledger import RunRecord
from ..profiles import Profile
from ._progress import CampaignProgress
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


def run_finals(
    runner: CandidateRunner,
    finalists: list[Finalist],
    plan: FinalsPlan,
    *,
    echo: Callable[[str], None] = print,
    progress: CampaignProgress | None = None,
) -> None:
    """Run and evaluate every finalist on every final seed and held-out setting; results go to the ledger.

    One console line per final run (``[ finals] run 3/25  agent#30  seed 7  test accuracy 0.8123``) and
    one per finalist when its runs are done; ``progress`` counts the runs (a resume starts part-way)."""
    metric = runner.profile.metric_name
    on_final_runs = any(not overrides for overrides in plan.heldout.values())  # held-out clients
    settings = [(s, o) for s, o in plan.heldout.items() if o]  # settings that need runs of their own
    total = len(finalists) * (len(plan.seeds) + len(settings) * len(plan.heldout_seeds))
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

    for finalist in finalists:
        c = finalist.candidate
        test = []
        for seed in plan.seeds:
            record = runner.run(c, seed, stage="final")
            test.append(_evaluate(runner, record, runner.profile, "test"))
            if on_final_runs:
                _evaluate(runner, record, runner.profile, "heldout")
            tell(finalist.name, seed, record, "test", test[-1])
        for setting, overrides in settings:
            profile = runner.heldout_profile(setting, overrides)
            part = "heldout" if profile.heldout_clients else "test"
            for seed in plan.heldout_seeds:
                record = runner.run(c, seed, stage="heldout", setting=setting, profile_overrides=overrides)
                tell(finalist.name, seed, record, f"{setting}", _evaluate(runner, record, profile, part))
        finite = [v for v in test if math.isfinite(v)]
        mean = sum(finite) / len(finite) if finite else math.nan
        echo(f"[ finals] {finalist.name:<12} test {metric} mean {mean:.4f} over {len(finite)} seeds")


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
