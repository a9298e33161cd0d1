"""Paired statistics for the final classification: oriented differences, one-sided paired t-tests
against a margin (superiority and non-inferiority), power (the minimum detectable effect and the seeds it
takes), a seeded paired bootstrap CI (for information) and multiple-comparison corrections.

Everything here works on plain numbers: no training, no profiles.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

__all__ = [
    "CORRECTIONS",
    "PairedTest",
    "paired_differences",
    "paired_test",
    "minimum_detectable_effect",
    "seeds_for_effect",
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
    margin: float = 0.0,
    resamples: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """One-sided paired t-test of oriented differences against ``margin`` (H0: mean ≤ margin), plus the
    bootstrap CI of their mean.

    ``margin > 0`` tests superiority by a margin; ``margin < 0`` tests non-inferiority within ``-margin``.
    The statistic is ``(mean - margin) / (std / sqrt(n))`` with n - 1 degrees of freedom
    (``scipy.stats.ttest_1samp(d - margin, 0, alternative="greater")``). Degenerate cases, decided before
    scipy is called:

    * fewer than 2 differences: p = 1 (not significant), with a note;
    * all differences identical (zero sample variance): decided by the margin alone — p = 0 if their mean
      is above it, else p = 1 (a t statistic would be undefined, not infinite).
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
        if mean > margin:
            note = f"all paired differences identical and above the margin {margin:g} (zero variance): p = 0"
            return PairedTest(n, mean, 0.0, math.inf, 0.0, low, high, level, note)
        note = f"all paired differences identical and not above the margin {margin:g} (zero variance): p = 1"
        return PairedTest(n, mean, 0.0, math.nan, 1.0, low, high, level, note)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_1samp(values - margin, 0.0, alternative="greater")
    return PairedTest(n, mean, std, float(result.statistic), float(result.pvalue), low, high, level)


def _power(effect: float, sd: float, n: int, alpha: float) -> float:
    """Power of the one-sided paired t-test at level ``alpha`` when the true mean exceeds H0 by ``effect``."""
    df = n - 1
    critical = stats.t.ppf(1.0 - alpha, df)
    return float(1.0 - stats.nct.cdf(critical, df, math.sqrt(n) * effect / sd))


def minimum_detectable_effect(sd: float, n: int, alpha: float, power: float = 0.8) -> float:
    """The smallest true mean difference (above the test's margin) that the one-sided paired t-test at level
    ``alpha`` detects with probability ``power`` on ``n`` seeds, for paired differences of spread ``sd``.

    Exact (noncentral t), not the normal approximation; about ``(t[1-alpha] + t[power]) * sd / sqrt(n)``.
    NaN when ``n < 2`` or ``sd`` is not a positive finite number; 0 when ``sd == 0``.
    """
    if n < 2 or not math.isfinite(sd) or sd < 0:
        return math.nan
    if sd == 0:
        return 0.0
    upper = (stats.t.ppf(1.0 - alpha, n - 1) + stats.norm.ppf(power) + 1.0) * sd / math.sqrt(n)
    while _power(upper, sd, n, alpha) < power:  # heavy tails at few seeds: widen the bracket
        upper *= 2.0
    return float(optimize.brentq(lambda d: _power(d, sd, n, alpha) - power, 0.0, upper))


def seeds_for_effect(
    sd: float, effect: float, alpha: float, power: float = 0.8, *, at_least: int = 2, at_most: int = 200
) -> int:
    """The fewest seeds (between ``at_least`` and ``at_most``) whose minimum detectable effect is at or below
    ``effect``; ``at_most`` when even that many do not reach it."""
    if effect <= 0 or not math.isfinite(sd):
        return at_most
    for n in range(max(2, at_least), at_most + 1):
        if minimum_detectable_effect(sd, n, alpha, power) <= effect:
            return n
    return at_most


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
