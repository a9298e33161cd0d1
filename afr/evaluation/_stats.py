"""Paired statistics for the final classification: oriented differences, a one-sided paired t-test,
a seeded paired bootstrap CI (for information) and multiple-comparison corrections (Holm, Bonferroni).

Everything here works on plain numbers: no training, no profiles.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "CORRECTIONS",
    "PairedTest",
    "paired_differences",
    "paired_test",
    "bootstrap_ci",
    "adjust_pvalues",
    "holm",
    "corrected_pvalue",
]

CORRECTIONS = ("holm", "bonferroni", "none")
"""Names accepted by :func:`adjust_pvalues` (``rules.correction``)."""

_ZERO_SPREAD = 1e-12
"""Differences whose sample std is below this (times max(1, |mean|)) count as identical."""


def paired_differences(
    candidate: Mapping[int, float], reference: Mapping[int, float], *, higher_is_better: bool
) -> tuple[dict[int, float], list[int]]:
    """Oriented per-seed differences ``sign * (candidate[s] - reference[s])`` over the common seeds.

    ``sign`` is +1 when higher is better and -1 otherwise, so a positive difference always means the
    candidate is better. Seeds where the reference is not finite are dropped. Seeds where the
    reference is finite but the candidate is not (a diverged run) are returned separately as
    ``failed`` seeds: they carry no number, but they are a collapse, not a missing value.
    """
    sign = 1.0 if higher_is_better else -1.0
    diffs: dict[int, float] = {}
    failed: list[int] = []
    for seed in sorted(set(candidate) & set(reference)):
        ref, cand = float(reference[seed]), float(candidate[seed])
        if not math.isfinite(ref):
            continue
        if not math.isfinite(cand):
            failed.append(seed)
            continue
        diffs[seed] = sign * (cand - ref)
    return diffs, failed


@dataclass
class PairedTest:
    """One-sided paired test of "candidate better than reference" on oriented differences."""

    n: int
    mean: float
    std: float
    """Sample standard deviation (ddof=1) of the differences; NaN when n < 2."""
    t: float
    p: float
    """Raw one-sided p-value (before any multiple-comparison correction)."""
    ci_low: float
    ci_high: float
    """Paired bootstrap CI of the mean difference (information only; no rule reads it)."""
    ci_level: float
    note: str = ""
    """Why the test is degenerate (zero variance, too few seeds), empty otherwise."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bootstrap_ci(
    diffs: Sequence[float], *, resamples: int = 10_000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile CI of the mean of ``diffs`` from ``resamples`` paired bootstrap resamples.

    Seeded (``numpy.random.default_rng(seed)``): the same differences give the same interval.
    """
    values = np.asarray(list(diffs), dtype=float)
    if len(values) == 0:
        return math.nan, math.nan
    if len(values) == 1 or resamples < 1:
        return float(values.mean()), float(values.mean())
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[index].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def paired_test(
    diffs: Mapping[int, float] | Sequence[float],
    *,
    resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """One-sided paired t-test (``scipy.stats.ttest_rel``, ``alternative="greater"``) of oriented
    differences against 0, plus the bootstrap CI of their mean.

    Degenerate cases, decided before scipy is called:

    * fewer than 2 differences: p = 1 (not significant), with a note;
    * all differences identical (zero sample variance): p = 0 if their mean is > 0, else p = 1.
    """
    values = np.asarray(list(diffs.values() if isinstance(diffs, Mapping) else diffs), dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    std = float(values.std(ddof=1)) if n >= 2 else math.nan
    low, high = bootstrap_ci(values, resamples=resamples, level=level, seed=seed)
    if n < 2:
        note = f"only {n} common seed{'s' if n != 1 else ''}: a paired test needs at least 2"
        return PairedTest(n, mean, std, math.nan, 1.0, low, high, level, note)
    if std <= _ZERO_SPREAD * max(1.0, abs(mean)):
        if mean > 0:
            note = "all paired differences identical and positive (zero variance): p = 0"
            return PairedTest(n, mean, 0.0, math.inf, 0.0, low, high, level, note)
        note = "all paired differences identical and not positive (zero variance): p = 1"
        return PairedTest(n, mean, 0.0, math.nan, 1.0, low, high, level, note)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(values, np.zeros(n), alternative="greater")
    return PairedTest(n, mean, std, float(result.statistic), float(result.pvalue), low, high, level)


def holm(pvalues: Sequence[float], n_comparisons: int | None = None) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone), in the order given.

    ``n_comparisons`` may exceed ``len(pvalues)``: the comparisons not given are taken as p = 1,
    the conservative choice (they rank last, so every given p keeps its largest multiplier).
    """
    m = max(len(pvalues), n_comparisons or 0)
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [1.0] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        adjusted[i] = running
    return adjusted


def adjust_pvalues(pvalues: Sequence[float], method: str, n_comparisons: int | None = None) -> list[float]:
    """Adjust a family of p-values with ``method`` (one of :data:`CORRECTIONS`)."""
    if method == "holm":
        return holm(pvalues, n_comparisons)
    m = max(len(pvalues), n_comparisons or 0)
    if method == "bonferroni":
        return [min(1.0, m * float(p)) for p in pvalues]
    if method == "none":
        return [float(p) for p in pvalues]
    raise ValueError(f"unknown correction {method!r}; use one of {', '.join(CORRECTIONS)}")


def corrected_pvalue(
    p: float, others: Sequence[float], method: str, n_comparisons: int | None = None
) -> float:
    """The adjusted p-value of ``p`` within the family ``[p, *others]`` of ``n_comparisons`` tests."""
    return adjust_pvalues([p, *others], method, n_comparisons)[0]
