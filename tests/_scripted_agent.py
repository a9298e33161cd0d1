"""A scripted agent for campaign tests: proposes ``cfg["sources"]`` once, in order (then nothing)."""

from __future__ import annotations

from afr.agents import Agent, AgentContext, Proposal


class ScriptedAgent(Agent):
    """Proposes every file of ``cfg["sources"]`` in its first call; nothing after that."""

    name = "scripted"

    def propose(self, ctx: AgentContext, n: int) -> list[Proposal]:
        if ctx.history:
            return []
        return [Proposal(str(s), note=f"scripted file {i}") for i, s in enumerate(self.cfg["sources"])]
