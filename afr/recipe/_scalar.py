"""Declared scalars: the only numbers of a recipe that the control arm may tune."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Scalar", "scalar"]


@dataclass(frozen=True)
class Scalar:
    """A tunable number declared on a recipe class: default value and search range."""

    default: float
    low: float
    high: float
    log: bool = False
    integer: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"scalar {self.name or '?'}: low {self.low} > high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"scalar {self.name or '?'}: a log-scaled range needs low > 0")

    def __set_name__(self, owner: type, name: str) -> None:
        object.__setattr__(self, "name", name)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.__dict__.get("_scalars", {}).get(self.name, self.default)

    def with_range(self, **changes: Any) -> Scalar:
        """A copy with a different default or range (profiles narrow the generic ranges)."""
        return Scalar(**{**self.as_dict(), **changes})

    def with_default(self, default: float) -> Scalar:
        """A copy whose default is ``default`` moved into the range (see :meth:`clip`)."""
        return self.with_range(default=self.clip(default))

    def clip(self, value: float) -> float:
        """``value`` moved into ``[low, high]`` (and rounded to a whole number for an integer scalar)."""
        value = min(self.high, max(self.low, float(value)))
        return float(round(value)) if self.integer else value

    def as_dict(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "low": self.low,
            "high": self.high,
            "log": self.log,
            "integer": self.integer,
            "name": self.name,
        }

    def check(self, value: float) -> float:
        """Return ``value`` as a number if it lies in the declared range, else raise ValueError."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"scalar {self.name!r} must be a number, got {value!r}")
        if math.isnan(value) or not self.low <= value <= self.high:
            raise ValueError(
                f"scalar {self.name!r}={value} is outside its declared range [{self.low}, {self.high}]"
            )
        return int(value) if self.integer else float(value)


def scalar(default: float, low: float, high: float, *, log: bool = False, integer: bool = False) -> Any:
    """Declare a tunable scalar on a recipe class, e.g. ``mu = scalar(0.01, 1e-4, 10.0, log=True)``.

    Typed ``Any`` so that ``self.mu`` reads as a plain number inside hooks.
    """
    return Scalar(default, low, high, log=log, integer=integer)
