"""Who goes to the finals: the search's best agent candidates, the best control trial and the baseline,
and how many final runs that takes. The campaign schedules the runs (``afr/campaign/_finals.py``); this
module only reads the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ledger import CandidateRecord
from ._classify import ClassificationRules
from ._stats import seeds_for_effect

__all__ = ["Finalist", "select_finalists", "finals_runs_needed", "final_seed_count"]


@dataclass(frozen=True)
class Finalist:
    """A candidate taken to the finals, and why."""

    role: str
    """``agent`` (a top-k agent candidate), ``control`` (the best control trial) or ``baseline``."""
    candidate: CandidateRecord

    @property
    def name(self) -> str:
        """The candidate's one name (``agent#30``, ``control#12``, ``baseline#1``), as everywhere else."""
        return self.candidate.name


def finals_runs_needed(top_k: int, seeds: int, extra_settings: int, heldout_seeds: int) -> int:
    """Upper bound of final runs: top-k agent candidates + best control + baseline, each on every final seed
    and on every held-out setting that needs runs of its own (held-out clients reuse the final runs)."""
    return (top_k + 2) * (seeds + extra_settings * heldout_seeds)


def final_seed_count(
    paired_sd: float | None,
    detect: float | None,
    margin: float,
    fallback: int | None,
    *,
    top_k: int,
    rules: ClassificationRules,
) -> int:
    """Final seeds so that ``margin + MDE <= detect`` at ``rules.power`` and ``rules.alpha / top_k`` (the
    level a finalist gets at worst after the correction); ``fallback`` when the task's spread is unknown."""
    if paired_sd is None or detect is None:
        return int(fallback or 5)
    return seeds_for_effect(paired_sd, detect - margin, rules.alpha / max(1, top_k), rules.power)


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
