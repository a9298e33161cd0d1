"""The one name of a candidate, everywhere it is shown.

Console lines, the report, TensorBoard run folders, artifact folders, the Optuna dashboard's user attrs and
what agents are told all spell a candidate the same way, so one can be followed from a console line to its
curves, its weights and its verdict. The name carries the candidate's number *within its arm* (1, 2, ... in
the order that arm proposed them), which the ledger assigns when it stores the candidate: the two arms
search side by side, each at its own pace, so their candidates' row ids interleave by timing, but a seeded
arm proposes the same candidates in the same order on every machine, hence under the same names. Ledgers
written before per-arm numbers (no ``number`` in the candidates' meta) keep their names from the row id.
"""

from __future__ import annotations

__all__ = ["BASELINE_KEY", "NUMBER_KEY", "candidate_name"]

BASELINE_KEY = "control-0"
"""The proposal key of the control's trial 0: the baseline recipe with its default scalars."""


NUMBER_KEY = "number"
"""The candidate meta key holding its number within its arm (set once, by the ledger, when it is stored)."""


def candidate_name(arm: str, number: int, proposal_key: str | None = None) -> str:
    """``agent#30``, ``control#12``, or ``baseline#1`` for the control's trial 0 (the baseline itself);
    ``number`` is the candidate's number within its arm (its row id in a ledger older than those numbers).

    The only place this format is written: everything else calls this (or ``CandidateRecord.name``).
    """
    role = "baseline" if arm == "control" and proposal_key == BASELINE_KEY else arm
    return f"{role}#{int(number)}"
