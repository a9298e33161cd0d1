"""Who goes to the finals: the search's best agent candidates, the best control trial and the baseline,
and how many final runs that takes. The campaign schedules the runs (``afr/campaign/_finals.py``); this
module only reads the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ledger import CandidateRecord
from ..recipe._niche import RecipeNiche, recipe_niche
from ._classify import ClassificationRules
from ._racing import race_order, rung_histories
from ._stats import seeds_for_effect

__all__ = ["Finalist", "select_finalists", "finals_runs_needed", "final_seed_count"]


@dataclass(frozen=True)
class Finalist:
    """A candidate taken to the finals, and why."""

    role: str
    """``agent`` (a top-k agent candidate), ``control`` (the best control trial) or ``baseline``."""
    candidate: CandidateRecord

    @property
    def niche(self) -> RecipeNiche:
        """The hooks its recipe class overrides and the mechanisms it declares (read from its code)."""
        return recipe_niche(self.candidate.source)

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


def select_finalists(
    ledger, campaign_id: int, top_k: int, higher_is_better: bool, racing_seeds: list[int] | None = None
) -> list[Finalist]:
    """Top-k distinct agent candidates by validation score, the best control trial, and the baseline
    (trial 0).

    With seed racing (``racing_seeds``: the search seeds in rung order) candidates rank by their mean over
    their seeds one standard error towards worse, then by rung (:func:`race_order`); without, by their one
    search score.

    Candidates that are one idea count once, in either arm: the same validation curve (e.g. a perturbed
    scalar the recipe never reads, or a control trial that behaves as the baseline), or — for files that
    declare one — the same mechanism set (clones of one lineage that differ only in scalar values), or a
    chain of those. The next distinct candidate takes the slot: copies would only dilute the
    multiple-testing correction.
    """
    seen_curves: set[str] = set()
    seen_mechanisms: set[tuple[str, ...]] = set()

    def distinct(candidate: CandidateRecord) -> bool:
        curve = _search_curve(ledger, campaign_id, candidate.id)
        mechanisms = recipe_niche(candidate.source).mechanisms if candidate.arm == "agent" else None
        same = curve in seen_curves or (mechanisms is not None and mechanisms in seen_mechanisms)
        # A skipped candidate's curve and mechanisms join its idea's too: "the same idea" is transitive (a
        # clone of a finalist's clone is the finalist's clone).
        seen_curves.add(curve)
        if mechanisms is not None:
            seen_mechanisms.add(mechanisms)
        return not same

    control = ledger.candidates(campaign_id, arm="control")
    baseline = [c for c in control if c.meta.get("proposal_key") == "control-0" and c.status == "ok"]
    if baseline:
        seen_curves.add(_search_curve(ledger, campaign_id, baseline[0].id))
    if racing_seeds:
        runs = ledger.runs(campaign_id, stage="search")
        by_id = {c.id: c for c in ledger.candidates(campaign_id)}

        def ranked(arm: str, k: int) -> list[CandidateRecord]:
            histories = rung_histories([c for c in by_id.values() if c.arm == arm], runs, racing_seeds)
            return [by_id[i] for i in race_order(histories, higher_is_better)][:k]

    else:

        def ranked(arm: str, k: int) -> list[CandidateRecord]:
            return ledger.best_candidates(campaign_id, arm, k, higher_is_better=higher_is_better)

    best_control = ranked("control", 1)
    # The control's best trial is the baseline itself, or behaves exactly as it does: the baseline stands
    # for the control (one finalist, not two).
    control_finalist = [c for c in best_control if not baseline or c.id != baseline[0].id]
    control_finalist = [c for c in control_finalist if distinct(c)]
    seen_curves.clear()  # an agent candidate behaving as the baseline is still the agent's finalist
    agent: list[CandidateRecord] = []
    for candidate in ranked("agent", 10 * top_k):
        if distinct(candidate):
            agent.append(candidate)
        if len(agent) == top_k:
            break
    out = [Finalist("agent", c) for c in agent]
    out += [Finalist("control", c) for c in control_finalist]
    if baseline:
        out.append(Finalist("baseline", baseline[0]))
    return out


def _search_curve(ledger, campaign_id: int, candidate_id: int) -> str:
    """A candidate's search runs' validation curves, rounded: equal strings are indistinguishable runs."""
    runs = ledger.runs(campaign_id, candidate_id=candidate_id, stage="search")
    return repr([[round(p.get("val") or 0.0, 6) for p in r.per_round or ()] for r in runs])
