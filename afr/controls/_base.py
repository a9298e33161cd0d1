"""The control arm's interface: propose values for the baseline's declared scalars, receive scores.

A control never sees recipe code, the engine, the sandbox or the agent arm: the campaign asks it for a
:class:`ControlTrial` (a trial number and scalar values), runs the baseline recipe with those values under
the same budget as the agent arm, and tells it the score (``None`` for a failed run, which the campaign
still charges).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the control only reads a Scalar's fields; no need to import the recipe package
    from ..recipe import Scalar

__all__ = ["ScalarControl", "ControlTrial", "TrialState"]

TrialState = Literal["pending", "ok", "failed"]
"""``pending``: asked and not yet told; ``ok``: told a score; ``failed``: told ``None`` (a failed run)."""


@dataclass(frozen=True)
class ControlTrial:
    """One proposal of the control arm: scalar values for the baseline recipe, and once told, its score."""

    number: int
    scalars: dict[str, float]
    state: TrialState = "pending"
    score: float | None = None
    message: str = ""
    meta: dict[str, object] = field(default_factory=dict, compare=False)


class ScalarControl(ABC):
    """Proposes values for the baseline's declared scalars and learns from their scores.

    ``space`` maps each scalar name to its :class:`~afr.recipe.Scalar` (default and range, as the profile
    sets them). ``higher_is_better`` is the profile's metric direction.
    """

    def __init__(self, space: Mapping[str, Scalar], *, higher_is_better: bool) -> None:
        self.space: dict[str, Scalar] = dict(space)
        self.higher_is_better = bool(higher_is_better)

    @abstractmethod
    def ask(self) -> ControlTrial:
        """A new trial: its number and scalar values (within the space's ranges)."""

    @abstractmethod
    def tell(self, number: int, score: float | None, *, message: str = "", candidate: str = "") -> None:
        """Report the score of trial ``number``; ``None`` (or a non-finite score) marks a failed run.

        ``candidate``: the campaign's name of the candidate the trial ran as (``control#12``), kept with
        the trial so a dashboard shows the same name as the console and the report."""

    def annotate(self, number: int, key: str, value: object) -> None:
        """Keep ``value`` for trial ``number`` under ``key`` (e.g. its seed-racing rungs); its score stays.

        The default keeps nothing: a control without a store of its own has nowhere to put it."""
        del number, key, value

    @abstractmethod
    def trials(self) -> list[ControlTrial]:
        """Every trial asked so far (pending, ok and failed), in trial-number order."""

    def pending(self) -> list[ControlTrial]:
        """Trials asked but never told (e.g. before a crash): the campaign re-runs them, then tells."""
        return [t for t in self.trials() if t.state == "pending"]

    def best(self) -> ControlTrial | None:
        """The told trial with the best score in the metric's direction (earliest on ties); failed and
        pending trials never count. None if no trial has a score yet."""
        scored = [
            t for t in self.trials() if t.state == "ok" and t.score is not None and math.isfinite(t.score)
        ]
        if not scored:
            return None
        sign = -1.0 if self.higher_is_better else 1.0
        return min(scored, key=lambda t: (sign * float(t.score), t.number))  # type: ignore[arg-type]
