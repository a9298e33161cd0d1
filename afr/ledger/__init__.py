"""The campaign ledger: a SQL record of every campaign, candidate, FL run, cost and budget charge.

``Ledger.for_campaign_dir(path)`` opens ``<path>/ledger.db`` (SQLite, WAL mode); ``Ledger(url)`` takes any
SQLAlchemy URL (e.g. PostgreSQL). All tables are prefixed ``afr_`` so Optuna can share the database.
"""

from ._ledger import (
    ACCOUNTS,
    ARMS,
    CAMPAIGN_STATUSES,
    CANDIDATE_STATUSES,
    COST_KINDS,
    LEDGER_FILE,
    RUN_STAGES,
    RUN_STATUSES,
    Account,
    Arm,
    CampaignRecord,
    CandidateRecord,
    Ledger,
    LedgerError,
    RunRecord,
    config_hash,
)
from ._models import TABLE_PREFIX, Base, CampaignRow, CandidateRow, ChargeRow, CostRow, RunRow

__all__ = [
    "Ledger",
    "LEDGER_FILE",
    "LedgerError",
    "CampaignRecord",
    "CandidateRecord",
    "RunRecord",
    "config_hash",
    "CAMPAIGN_STATUSES",
    "Arm",
    "ARMS",
    "Account",
    "ACCOUNTS",
    "CANDIDATE_STATUSES",
    "COST_KINDS",
    "RUN_STAGES",
    "RUN_STATUSES",
    "TABLE_PREFIX",
    "Base",
    "CampaignRow",
    "CandidateRow",
    "RunRow",
    "CostRow",
    "ChargeRow",
]
