"""The ``given`` agent: one hand-written recipe file, proposed once (``afr evaluate``).

It lets a researcher's own recipe go through exactly the protocol a campaign's candidates go through: the
validator, the sandbox, the same-budget scalar-only control on the baseline, the finals and the verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ._base import Agent, AgentContext, Proposal

__all__ = ["GivenAgent"]


class GivenAgent(Agent):
    """Proposes ``cfg["source"]`` (a recipe file's text) once; nothing after that."""

    name = "given"

    def __init__(self, cfg: Mapping[str, Any], seed: int = 0) -> None:
        super().__init__(cfg, seed)
        self.source = str(cfg.get("source") or "")
        self.label = str(cfg.get("label") or "the given recipe")

    def check_ready(self) -> None:
        if not self.source.strip():
            raise ConfigError(
                "no recipe to evaluate", where="recipe=", fix="recipe=<shipped name or file.py>"
            )

    def propose(self, ctx: AgentContext, n: int) -> list[Proposal]:
        if ctx.history or n < 1:
            return []
        return [Proposal(self.source, note=f"{self.label}, evaluated as given")]
