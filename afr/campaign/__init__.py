"""Campaigns: both search arms, one accountant, one ledger, sandboxed runs, resumable."""

from ._loop import (
    DEFAULT_LOOKAHEAD,
    Campaign,
    CampaignFailure,
    CampaignResult,
    CampaignSettings,
    check_candidate,
    join_settings,
)
from ._retry import ATTEMPTS_DIR, archive_failed_attempt, attempt_name, attempt_number, study_name
from ._runner import CandidateRunner, RunnerSettings, run_key

__all__ = [
    "DEFAULT_LOOKAHEAD",
    "Campaign",
    "CampaignSettings",
    "CampaignResult",
    "CampaignFailure",
    "check_candidate",
    "CandidateRunner",
    "RunnerSettings",
    "run_key",
    "ATTEMPTS_DIR",
    "archive_failed_attempt",
    "attempt_number",
    "attempt_name",
    "study_name",
    "join_settings",
]
