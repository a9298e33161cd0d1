"""Finals: the search's best agent candidates, the best control trial and the baseline, re-run with
fresh paired seeds on the test split and on the profile's held-out settings.

Training runs in the sandbox (charged to the accountant's ``finals`` account); the test and held-out
metrics are computed here, in the parent process, from the returned weights — workers never see them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..ledger import CandidateRecord, RunRecord
from ..profiles import Profile

__all__ = ["Finalist", "FinalsPlan", "select_finalists", "run_finals", "finals_runs_needed"]


@dataclass(frozen=True)
class Finalist:
    """A candidate taken to the finals, and why."""

    role: str
    """``agent`` (a top-k agent candidate), ``control`` (the best control trial) or ``baseline``."""
    candidate: CandidateRecord

    @property
    def name(self) -> str:
        return f"{self.role}#{self.candidate.id}"


@dataclass
class FinalsPlan:
    """Which seeds and held-out settings every finalist is evaluated on (the same for all: paired)."""

    seeds: list[int]
    heldout: dict[str, dict[str, Any]]
    heldout_seeds: list[int]
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)


def finals_runs_needed(top_k: int, seeds: int, settings: int, heldout_seeds: int) -> int:
    """Upper bound of final runs: top-k agent candidates + best control + baseline."""
    return (top_k + 2) * (seeds + settings * heldout_seeds)


def select_finalists(ledger, campaign_id: int, top_k: int, higher_is_better: bool) -> list[Finalist]:
    """Top-k agent candidates by validation score, the best control trial, and the baseline (trial 0)."""
    # Candidates the search cannot tell apart (the same validation curve, e.g. a perturbed scalar the
    # recipe never reads) are one finalist: copies would only dilute the multiple-testing correction.
    agent: list[CandidateRecord] = []
    seen: set[str] = set()
    for candidate in ledger.best_candidates(
        campaign_id, "agent", 10 * top_k, higher_is_better=higher_is_better
    ):
        runs = ledger.runs(campaign_id, candidate_id=candidate.id, stage="search")
        behaviour = repr([[round(p.get("val") or 0.0, 6) for p in r.per_round or ()] for r in runs])
        if behaviour in seen:
            continue
        seen.add(behaviour)
        agent.append(candidate)
        if len(agent) == top_k:
            break
    control = ledger.candidates(campaign_id, arm="control")
    baseline = [c for c in control if c.meta.get("proposal_key") == "control-0" and c.status == "ok"]
    best_control = ledger.best_candidates(campaign_id, "control", 1, higher_is_better=higher_is_better)
    out = [Finalist("agent", c) for c in agent]
    if best_control and (not baseline or best_control[0].id != baseline[0].id):
        out.append(Finalist("control", best_control[0]))
    if baseline:
        out.append(Finalist("baseline", baseline[0]))
    return out


def run_finals(
    runner,
    finalists: list[Finalist],
    plan: FinalsPlan,
    *,
    echo: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Run every finalist on every final seed and held-out setting; return its evidence.

    Evidence per finalist: ``search_score``, ``test`` {seed: metric}, ``heldout`` {setting: {seed: metric}}.
    """

    def profile_for(setting: str) -> Profile:
        return runner.heldout_profile(setting, plan.heldout.get(setting, {}))

    evidence: dict[str, dict[str, Any]] = {}
    for finalist in finalists:
        c = finalist.candidate
        entry: dict[str, Any] = {"role": finalist.role, "search_score": c.score, "test": {}, "heldout": {}}
        for seed in plan.seeds:
            record = runner.run(c, seed, stage="final")
            entry["test"][seed] = _evaluate(runner, record, profile_for(""), "test")
        for setting, overrides in plan.heldout.items():
            scores = {}
            for seed in plan.heldout_seeds:
                record = runner.run(c, seed, stage="heldout", setting=setting, profile_overrides=overrides)
                part = "heldout" if "heldout_clients" in overrides else "test"
                scores[seed] = _evaluate(runner, record, profile_for(setting), part)
            entry["heldout"][setting] = scores
        finite = [v for v in entry["test"].values() if math.isfinite(v)]
        mean = sum(finite) / len(finite) if finite else math.nan
        metric = runner.profile.metric_name
        echo(f"[ finals] {finalist.name:<12} test {metric} mean {mean:.4f} over {len(finite)} seeds")
        evidence[finalist.name] = entry
    plan.evidence = evidence
    return evidence


def _evaluate(runner, record: RunRecord | None, profile: Profile, part: str) -> float:
    """The parent's metric of a finished run's weights (NaN for a failed run); stored in the ledger."""
    if record is None or record.status != "ok" or not record.artifacts or "weights" not in record.artifacts:
        return math.nan
    if record.evaluation and record.evaluation.get("part") == part:
        metric = record.evaluation.get("mean")
        return math.nan if metric is None else float(metric)
    saved = torch.load(Path(runner.dir) / record.artifacts["weights"], weights_only=True)
    model = profile.build_model(saved["model_variant"])
    model.load_state_dict(saved["state_dict"])
    data = profile.heldout_data() if part == "heldout" else profile.data("test")
    result = profile.evaluate(model, data)
    runner.ledger.record_evaluation(
        record.id,
        {"part": part, "metric": profile.metric_name, "mean": result.mean, "per_client": result.per_client},
    )
    return result.mean
