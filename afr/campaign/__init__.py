"""Campaigns: both search arms, one accountant, one ledger, sandboxed runs, resumable."""

from ._loop import Campaign, CampaignResult, CampaignSettings
from ._runner import BASELINE_SOURCE, CandidateRunner, RunnerSettings, run_key

__all__ = [
    "Campaign",
    "CampaignSettings",
    "CampaignResult",
    "CandidateRunner",
    "RunnerSettings",
    "BASELINE_SOURCE",
    "run_key",
]
