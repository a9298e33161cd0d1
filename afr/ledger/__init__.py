"""The campaign ledger: a SQL record of every campaign, candidate, FL run, cost and budget charge.

``Ledger.for_campaign_dir(path)`` opens ``<path>/ledger.db`` (SQLite, WAL mode); ``Ledger(url)`` takes any
SQLAlchemy URL (e.g. PostgreSQL: ``campaign.storage=``; ``check_storage_url`` checks one before anything
is created, ``open_ledger`` opens a directory's or a URL's, ``find_campaign`` picks a campaign by name).
All tables are prefixed ``afr_`` so Optuna can share the database.
A new ledger records its schema version; an existing one is checked on open and never altered, except
that a ledger of an older schema version gets the (empty) tables added since (``ADDED_TABLES``).
``campaign_lock(path)`` keeps a second process off a running campaign and names the one that holds it.
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
    WORKER_KEY,
    Account,
    Arm,
    CampaignRecord,
    CandidateRecord,
    Ledger,
    LedgerError,
    RunRecord,
    check_storage_url,
    config_hash,
    find_campaign,
    is_database_url,
    open_ledger,
)
from ._lock import LOCK_FILE, CampaignLock, CampaignLockedError, LockOwner, campaign_lock
from ._models import (
    SCHEMA_VERSION,
    TABLE_PREFIX,
    Base,
    CampaignRow,
    CandidateRow,
    ChargeRow,
    CostRow,
    LlmCallRow,
    MetaRow,
    NoteRow,
    RunRow,
    WorkerRow,
)
from ._names import BASELINE_KEY, candidate_name

__all__ = [
    "Ledger",
    "BASELINE_KEY",
    "candidate_name",
    "SCHEMA_VERSION",
    "MetaRow",
    "LlmCallRow",
    "NoteRow",
    "WorkerRow",
    "WORKER_KEY",
    "LOCK_FILE",
    "CampaignLock",
    "CampaignLockedError",
    "LockOwner",
    "campaign_lock",
    "LEDGER_FILE",
    "LedgerError",
    "CampaignRecord",
    "CandidateRecord",
    "RunRecord",
    "config_hash",
    "check_storage_url",
    "find_campaign",
    "is_database_url",
    "open_ledger",
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
