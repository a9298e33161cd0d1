"""Campaigns: both search arms, one accountant, one ledger, sandboxed runs, resumable."""

from ._loop import Campaign, CampaignResult, CampaignSettings
from ._runner import CandidateRunner, RunnerSettings, run_key

__all__ = [
    "Campaign",
    "CampaignSettings",
    "CampaignResult",
    "CandidateRunner",
    "RunnerSettings",
    "run_key",
]
