"""The one name of a candidate, everywhere it is shown.

Console lines, the report, TensorBoard run folders, artifact folders, the Optuna dashboard's user attrs and
what agents are told all spell a candidate the same way, so one can be followed from a console line to its
curves, its weights and its verdict. The name comes from the ledger's candidate id, which a seeded campaign
assigns in the same order on every machine.
"""

from __future__ import annotations

__all__ = ["BASELINE_KEY", "candidate_name"]

BASELINE_KEY = "control-0"
"""The proposal key of the control's trial 0: the baseline recipe with its default scalars."""


def candidate_name(arm: str, candidate_id: int, proposal_key: str | None = None) -> str:
    """``agent#30``, ``control#12``, or ``baseline#1`` for the control's trial 0 (the baseline itself).

    The only place this format is written: everything else calls this (or ``CandidateRecord.name``).
    """
    role = "baseline" if arm == "control" and proposal_key == BASELINE_KEY else arm
    return f"{role}#{int(candidate_id)}"
