"""The ledger's tables (SQLAlchemy 2.0 typed declarative models).

Portable SQL only: plain VARCHAR/TEXT/INTEGER/FLOAT/TIMESTAMP columns, JSON via ``sqlalchemy.JSON``,
bounded string lengths (MySQL needs them) and named constraints. Every table name starts with ``afr_`` so
that Optuna's RDB storage (``studies``, ``trials``, ...) can live in the same database.
Enumerated values are checked in Python (see ``_ledger``), not by database CHECK constraints, so that
adding a status later needs no migration.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "MetaRow",
    "CampaignRow",
    "CandidateRow",
    "RunRow",
    "CostRow",
    "ChargeRow",
    "LlmCallRow",
    "NoteRow",
    "WorkerRow",
    "TABLE_PREFIX",
    "SCHEMA_VERSION",
]

TABLE_PREFIX = "afr_"
SCHEMA_VERSION = 3
"""The ledger schema these models describe; recorded in ``afr_meta`` when a ledger is created, checked on
every open. Bump it (and teach ``Ledger`` to migrate or refuse) whenever a table or column changes.

History: 1 — campaigns, candidates, runs, costs, charges; 2 — adds ``afr_llm_calls`` and ``afr_notes``; 3 —
adds ``afr_workers`` (an older ledger gets the added tables, empty, on open: :data:`ADDED_TABLES`)."""

ADDED_TABLES: dict[int, tuple[str, ...]] = {2: ("afr_llm_calls", "afr_notes"), 3: ("afr_workers",)}
"""Tables each schema version added. A ledger of an older version lacks only these, and gets them (empty)
when opened: an additive upgrade, nothing existing is changed."""

# Named constraints keep DDL identical across backends and make later migrations (Alembic) addressable.
_NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the ledger tables (its own MetaData: ``create_all`` touches only these)."""

    metadata = MetaData(naming_convention=_NAMING)


class MetaRow(Base):
    """Facts about the ledger itself: ``schema_version`` (see :data:`SCHEMA_VERSION`), ``created_at``."""

    __tablename__ = "afr_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class CampaignRow(Base):
    """One search campaign: its name, profile, agent and the exact config it was started with."""

    __tablename__ = "afr_campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    profile: Mapped[str] = mapped_column(String(255))
    agent: Mapped[str] = mapped_column(String(255))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="running")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class CandidateRow(Base):
    """A recipe proposed by an arm (agent code, a control trial's scalars, or the baseline)."""

    __tablename__ = "afr_candidates"
    __table_args__ = (Index("ix_afr_candidates_campaign_ast", "campaign_id", "ast_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("afr_campaigns.id"), index=True)
    arm: Mapped[str] = mapped_column(String(16))
    agent: Mapped[str] = mapped_column(String(255))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("afr_candidates.id"), default=None)
    source: Mapped[str] = mapped_column(Text)
    diff: Mapped[str] = mapped_column(Text)
    ast_hash: Mapped[str] = mapped_column(String(128), index=True)
    scalars: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("afr_candidates.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    score: Mapped[float | None] = mapped_column(Float, default=None)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RunRow(Base):
    """One FL run of a candidate with one seed; ``run_key`` finds it again after a resume."""

    __tablename__ = "afr_runs"
    __table_args__ = (UniqueConstraint("campaign_id", "run_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("afr_campaigns.id"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("afr_candidates.id"), index=True)
    run_key: Mapped[str] = mapped_column(String(255))
    seed: Mapped[int] = mapped_column(BigInteger)
    stage: Mapped[str] = mapped_column(String(16))
    split: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="running")
    per_round: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    final_metric: Mapped[float | None] = mapped_column(Float, default=None)
    runtime_s: Mapped[float | None] = mapped_column(Float, default=None)
    steps: Mapped[int | None] = mapped_column(BigInteger, default=None)
    bytes_up: Mapped[int | None] = mapped_column(BigInteger, default=None)
    bytes_down: Mapped[int | None] = mapped_column(BigInteger, default=None)
    artifacts: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    """The parent's evaluation of the returned weights (test or held-out metric, per client)."""
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class CostRow(Base):
    """A cost entry: one LLM call's tokens and price, or a compute charge."""

    __tablename__ = "afr_costs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("afr_campaigns.id"), index=True)
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("afr_candidates.id"), default=None)
    arm: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    money_usd: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ChargeRow(Base):
    """The budget accountant's state: one charge (reserved, then settled) per run_key."""

    __tablename__ = "afr_charges"
    __table_args__ = (UniqueConstraint("campaign_id", "run_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("afr_campaigns.id"), index=True)
    arm: Mapped[str] = mapped_column(String(16))
    run_key: Mapped[str] = mapped_column(String(255))
    runs: Mapped[int] = mapped_column(Integer, default=1)
    client_steps: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="reserved")
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    reserved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class LlmCallRow(Base):
    """One model call of an agent: what was sent, what came back, tokens, latency and why it was made."""

    __tablename__ = "afr_llm_calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("afr_campaigns.id"), index=True)
    cost_id: Mapped[int | None] = mapped_column(ForeignKey("afr_costs.id"), default=None)
    arm: Mapped[str] = mapped_column(String(16))
    agent: Mapped[str] = mapped_column(String(64), default="")
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    purpose: Mapped[str] = mapped_column(String(16), default="")
    """``propose``, ``retry`` (a re-ask after an unusable reply) or ``repair``."""
    step: Mapped[int | None] = mapped_column(Integer, default=None)
    request: Mapped[Any] = mapped_column(JSON, default=dict)
    """The request as sent (model, messages, sampling fields)."""
    reply: Mapped[str] = mapped_column(Text, default="")
    finish_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    """From the first attempt's start to the answer (or to giving up), retries and pauses included."""
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str] = mapped_column(Text, default="")
    """Why the call got no answer ('' when it did)."""
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class NoteRow(Base):
    """Something that happened to an arm that the report tells, e.g. why the agent arm stopped early."""

    __tablename__ = "afr_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("afr_campaigns.id"), index=True)
    arm: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WorkerRow(Base):
    """A process searching a shared campaign (``campaign.workers`` > 2 or ``afr worker``): its heartbeat
    tells the others whether the runs it holds are still its own, or a crashed worker's to take over."""

    __tablename__ = "afr_workers"
    __table_args__ = (UniqueConstraint("campaign_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("afr_campaigns.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="active")
