"""The agent concept: something that reads a task and its history and writes candidate recipe files.

Agents never run code: they return source text; the campaign validates, de-duplicates, charges and
runs it. They never import the engine, the sandbox, the ledger or the budget accountant — everything
they may know arrives in an :class:`AgentContext`.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ..recipe import DEFAULT_BASELINE, HOOKS, Recipe, RecipeSource, recipe_source
from ._brief import TaskBrief

__all__ = ["Agent", "AgentContext", "CallLog", "HistoryItem", "Proposal", "TaskBrief", "Usage"]


@dataclass(frozen=True)
class HistoryItem:
    """One earlier candidate as the agent may see it (validation score only, never test)."""

    candidate_id: int
    status: str
    """``ok`` (ran), ``failed`` (ran and failed), ``rejected`` (validator) or ``duplicate``."""
    score: float | None
    source: str
    diff: str
    reasons: tuple[str, ...] = ()
    parent_id: int | None = None
    note: str = ""
    name: str = ""
    """The campaign's name for it (``agent#30``), the one shown on the console, in the report and on the
    dashboard; agents call it by this name in notes and prompts (:attr:`label`)."""

    @property
    def label(self) -> str:
        """How agents name this candidate: its campaign name (``candidate <id>`` outside a campaign)."""
        return self.name or f"candidate {self.candidate_id}"


@dataclass(frozen=True)
class AgentContext:
    """Everything an agent is told about the task at one proposal step."""

    profile_name: str
    profile_description: str
    surface_doc: str
    """The published constraint list for this profile (docs/surface.md text)."""
    higher_is_better: bool
    metric: str
    baseline_score: float | None = None
    best: tuple[HistoryItem, ...] = ()
    """Best candidates so far, best first."""
    recent_failures: tuple[HistoryItem, ...] = ()
    """Latest rejected or failed candidates with their validator or run-time messages."""
    history: tuple[HistoryItem, ...] = ()
    """Every candidate of this arm so far, oldest first (agents that need the whole record)."""
    step: int = 0
    """How many proposals the agent has made before this call."""
    baseline: RecipeSource = field(default_factory=lambda: recipe_source(DEFAULT_BASELINE))
    """The recipe every candidate builds on: a shipped one (``baseline.shipped``: its class is importable from
    ``afr.recipe``) or a user's file, whose class a candidate cannot import, so it carries the file's code."""
    brief: TaskBrief | None = None
    """The campaign's typed task facts (hooks, scalars, contract, ...); None in hand-made contexts, where
    agents fall back to the texts above (:meth:`task_brief`)."""

    def task_brief(self) -> TaskBrief:
        """The campaign's brief, or one made from this context's own fields (every hook mutable)."""
        if self.brief is not None:
            return self.brief
        return TaskBrief(
            profile=self.profile_name,
            metric=self.metric,
            higher_is_better=self.higher_is_better,
            description=self.profile_description,
            mutable_hooks=_hook_signatures(),
            baseline=self.baseline,
            surface_doc=self.surface_doc,
        )


def _hook_signatures() -> dict[str, tuple[str, ...]]:
    return {h: tuple(inspect.signature(getattr(Recipe, h)).parameters) for h in HOOKS}


@dataclass(frozen=True)
class Proposal:
    """A candidate recipe file the agent wants evaluated."""

    source: str
    parent_id: int | None = None
    note: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallLog:
    """One model call as it happened (recorded in the ledger's ``afr_llm_calls`` table)."""

    purpose: str
    """``propose``, ``retry`` (a re-ask after an unusable reply) or ``repair``."""
    request: Mapping[str, Any]
    """The request as sent: model, messages, sampling fields."""
    reply: str = ""
    finish_reason: str | None = None
    latency_s: float = 0.0
    """From the first attempt's start to the answer or to giving up (retries and pauses included)."""
    attempts: int = 1
    error: str = ""
    """Why the call got no answer ('' when it did)."""
    started_at: datetime | None = None
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Usage:
    """What one model call cost (recorded in the ledger's cost table) and, for LLM calls, the call itself."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    money_usd: float = 0.0
    meta: Mapping[str, Any] = field(default_factory=dict)
    call: CallLog | None = None


class Agent(ABC):
    """Base of every agent. Subclasses implement :meth:`propose`; LLM agents also :meth:`repair`."""

    name: ClassVar[str] = "agent"

    def __init__(self, cfg: Mapping[str, Any], seed: int = 0) -> None:
        self.cfg = dict(cfg)
        self.seed = seed
        self._usage: list[Usage] = []
        self.outage: str = ""
        """Why the agent's latest model call got no answer for transport reasons (connection error, timeout,
        5xx, 429 after the retries); '' once a call is answered. Such a call is not a fruitless proposal."""

    def check_ready(self) -> None:
        """Raise :class:`afr.errors.ConfigError` before any work if the agent cannot run (e.g. no key)."""
        return None

    def check_endpoint(self) -> None:
        """Raise :class:`afr.errors.EndpointError` before anything is recorded if the agent's model service
        cannot be used (campaign preflight). Offline agents have none: nothing to check."""
        return None

    def sustained_outage(self) -> str:
        """Why the agent arm should stop because its model service stays out of reach ('' to go on)."""
        return ""

    def cancel(self) -> None:
        """Abandon any model call in flight and make no more (the campaign is being interrupted)."""
        return None

    @abstractmethod
    def propose(self, ctx: AgentContext, n: int) -> list[Proposal]:
        """Up to ``n`` new candidate files."""

    def repair(self, ctx: AgentContext, proposal: Proposal, errors: list[str]) -> Proposal | None:
        """A corrected version of ``proposal`` given validator or run-time ``errors`` (None: give up)."""
        return None

    def record_usage(self, usage: Usage) -> None:
        self._usage.append(usage)

    def drain_usage(self) -> list[Usage]:
        """Costs incurred since the last call (the campaign writes them to the ledger)."""
        usage, self._usage = self._usage, []
        return usage
