"""Agents of the search arm: ``evolve`` (offline, embedded) and LLM agents through the ``openai`` client.

A new agent is one module here plus one YAML in ``afr/conf/agent/``; the YAML's ``kind`` names the
class registered below.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ._base import Agent, AgentContext, CallLog, HistoryItem, Proposal, TaskBrief, Usage

__all__ = [
    "Agent",
    "AgentContext",
    "CallLog",
    "HistoryItem",
    "Proposal",
    "TaskBrief",
    "Usage",
    "AGENT_KINDS",
    "make_agent",
]

AGENT_KINDS: dict[str, str] = {
    "evolve": "afr.agents.evolve:EvolveAgent",
    "llm": "afr.agents.llm:LLMAgent",
    "given": "afr.agents.given:GivenAgent",
}


def make_agent(cfg: Mapping[str, Any], seed: int = 0) -> Agent:
    """The agent described by an ``afr/conf/agent/<name>.yaml`` config."""
    kind = cfg.get("kind")
    if kind not in AGENT_KINDS:
        kinds = ", ".join(sorted(AGENT_KINDS))
        raise ConfigError(f"unknown agent kind {kind!r}", where="agent=", fix=f"agent kinds: {kinds}")
    module, _, attr = AGENT_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), attr)(cfg, seed)
