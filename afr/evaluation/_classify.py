"""Classify each finalist's gain after the search: replicated, beyond the control, held out?

Pure data in, a labelled verdict out: no training happens here. The rules, their order and their
thresholds are written once, in ``afr/conf/evaluation/default.yaml`` (values; the practical ``margin`` of
each task is in its profile YAML) and ``docs/classification.md`` (prose); a test keeps the two in step.

Rules, applied in order (every difference oriented so that positive = better; ``margin`` in metric units):

1. ``no search gain``   -- the search score does not beat the baseline's by more than ``min_search_gain``;
2. ``single-run artifact`` -- the paired test-split differences vs the baseline have a mean <= 0;
3. ``seed-sensitive``   -- mean > 0, but the candidate's own runs are unstable: a run diverged, more than
   ``max_collapse_fraction`` of its seeds collapse (an outlier drop below its own median by more than
   ``collapse_margin`` and ``collapse_spreads`` robust sds), or its own seed spread swamps the gain
   (std > ``spread_ratio`` * |mean gain|);
   otherwise rule 2 again: the one-sided paired t-test of superiority by the margin (H0: mean <= margin)
   is not significant after the multiple-comparison correction -> ``single-run artifact``;
4. ``fixed-surface tuning effect`` -- not superior to the tuned control by the margin (same test);
5. ``held-out failure`` -- on some held-out setting not non-inferior to the control (vs the baseline when
   the control is the baseline) within the margin (H0: mean <= -margin), or not better on average;
6. ``repeated FL mechanism`` -- everything passed.

Every comparison also reports its power: the minimum detectable effect (80 % power at the corrected level)
on the seeds it had, and whether that was at or below the observed effect.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._stats import (
    CORRECTIONS,
    PairedTest,
    adjust_pvalues,
    minimum_detectable_effect,
    paired_differences,
    paired_test,
)

__all__ = [
    "MECHANISM",
    "FIXED_SURFACE",
    "SINGLE_RUN",
    "SEED_SENSITIVE",
    "HELDOUT_FAILURE",
    "NO_SEARCH_GAIN",
    "LABELS",
    "FinalistEvidence",
    "ClassificationRules",
    "Verdict",
    "DEFAULT_RULES_PATH",
    "load_rules",
    "classify",
    "classify_all",
    "SURVIVAL_COLUMNS",
    "survival_table",
    "render_table_markdown",
]

MECHANISM = "repeated FL mechanism"
FIXED_SURFACE = "fixed-surface tuning effect"
SINGLE_RUN = "single-run artifact"
SEED_SENSITIVE = "seed-sensitive"
HELDOUT_FAILURE = "held-out failure"
NO_SEARCH_GAIN = "no search gain"
LABELS = (MECHANISM, FIXED_SURFACE, SINGLE_RUN, SEED_SENSITIVE, HELDOUT_FAILURE, NO_SEARCH_GAIN)

DEFAULT_RULES_PATH = Path(__file__).resolve().parent.parent / "conf" / "evaluation" / "default.yaml"


@dataclass(frozen=True)
class FinalistEvidence:
    """What the final stage measured for one finalist (or the baseline, or the best control trial)."""

    name: str
    """E.g. ``"agent#35"``."""
    arm: str
    """``"agent"``, ``"control"`` or ``"baseline"``."""
    search_score: float | None
    """Its single-run validation score in the search."""
    test: dict[int, float]
    """Seed -> test metric on the fresh final seeds (the same seeds for every finalist)."""
    heldout: dict[str, dict[int, float]] = field(default_factory=dict)
    """Held-out setting name -> seed -> metric."""


@dataclass(frozen=True)
class ClassificationRules:
    """Every threshold of the classification (values in ``afr/conf/evaluation/default.yaml``; ``margin``
    comes from the profile's ``verdict.margin``)."""

    margin: float = 0.0
    """Practical margin in metric units: a gain must exceed it (rules 2, 4); held-out may lose at most it."""
    min_search_gain: float = 0.0
    collapse_margin: float = 0.05
    collapse_spreads: float = 3.0
    max_collapse_fraction: float = 0.1
    spread_ratio: float = 1.0
    alpha: float = 0.05
    correction: str = "holm"
    power: float = 0.8
    bootstrap_resamples: int = 10_000
    bootstrap_level: float = 0.95
    bootstrap_seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.alpha < 1.0:
            problems.append(f"alpha must be in (0, 1), got {self.alpha}")
        if not 0.0 < self.power < 1.0:
            problems.append(f"power must be in (0, 1), got {self.power}")
        if self.correction not in CORRECTIONS:
            problems.append(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        for name in ("margin", "min_search_gain", "collapse_margin", "collapse_spreads", "spread_ratio"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= self.max_collapse_fraction < 1.0:
            problems.append(f"max_collapse_fraction must be in [0, 1), got {self.max_collapse_fraction}")
        if not 0.0 < self.bootstrap_level < 1.0:
            problems.append(f"bootstrap_level must be in (0, 1), got {self.bootstrap_level}")
        if isinstance(self.bootstrap_resamples, bool) or not isinstance(self.bootstrap_resamples, int):
            problems.append(f"bootstrap_resamples must be an integer, got {self.bootstrap_resamples!r}")
        elif self.bootstrap_resamples < 0:
            problems.append(f"bootstrap_resamples must be >= 0, got {self.bootstrap_resamples}")
        if problems:
            raise ConfigError(
                "; ".join(problems),
                where="afr/conf/evaluation/default.yaml",
                fix="see docs/classification.md for each threshold's meaning and range",
            )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_rules(path: str | Path | None = None, **overrides: Any) -> ClassificationRules:
    """The classification rules from a YAML file (default: the shipped ``default.yaml``), then overrides."""
    from omegaconf import OmegaConf

    source = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        values = OmegaConf.to_container(OmegaConf.load(source), resolve=True) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"no classification rules at {source}", where="load_rules(path)") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{source} must be a mapping of threshold -> value", where=str(source))
    values.update(overrides)
    known = {f.name for f in dataclasses.fields(ClassificationRules)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown classification setting(s) {', '.join(unknown)}",
            where=str(source),
            fix=f"known settings: {', '.join(sorted(known))}",
        )
    ints = {"bootstrap_resamples", "bootstrap_seed"}
    typed: dict[str, Any] = {}
    for key, value in values.items():
        if key == "correction":
            typed[key] = str(value)
        elif key in ints and isinstance(value, float) and value.is_integer():
            typed[key] = int(value)
        elif key not in ints and isinstance(value, int) and not isinstance(value, bool):
            typed[key] = float(value)
        else:
            typed[key] = value
    return ClassificationRules(**typed)


@dataclass
class Verdict:
    """A finalist's label, the reasons along its path through the rules, and every number used."""

    label: str
    reasons: list[str]
    numbers: dict[str, Any]
    name: str = ""
    arm: str = ""

    @property
    def rule(self) -> int:
        """Number (1-6) of the rule that decided the label."""
        return int(self.numbers.get("rule", 0))


# --- classification -------------------------------------------------------------------------------


def _is_baseline(control: FinalistEvidence | None, baseline: FinalistEvidence) -> bool:
    return control is None or control is baseline or control.arm == "baseline"


def _test(
    diffs: Mapping[int, float], rules: ClassificationRules, margin: float, *, bootstrap: bool = True
) -> PairedTest:
    return paired_test(
        diffs,
        margin=margin,
        resamples=rules.bootstrap_resamples if bootstrap else 0,
        level=rules.bootstrap_level,
        seed=rules.bootstrap_seed,
    )


def _raw_p(
    candidate: Mapping[int, float],
    reference: Mapping[int, float],
    rules: ClassificationRules,
    hib: bool,
    margin: float,
) -> float:
    diffs, _ = paired_differences(candidate, reference, higher_is_better=hib)
    return _test(diffs, rules, margin, bootstrap=False).p


def _power(test: PairedTest, rules: ClassificationRules, margin: float, family: int) -> dict[str, Any]:
    """The smallest true gain this comparison detects 80 % of the time (margin + minimum detectable effect at
    the level each member of the family gets at worst, alpha / family), and whether it was at or below
    the observed mean."""
    detectable = margin + minimum_detectable_effect(test.std, test.n, rules.alpha / family, rules.power)
    return {"mde": detectable, "powered": bool(math.isfinite(detectable) and test.mean >= detectable)}


def _comparison(
    candidate: FinalistEvidence,
    reference: FinalistEvidence,
    others: Sequence[FinalistEvidence],
    rules: ClassificationRules,
    hib: bool,
    n_comparisons: int,
) -> dict[str, Any]:
    """Superiority by the margin on the paired test seeds, corrected over the family of finalists."""
    diffs, failed = paired_differences(candidate.test, reference.test, higher_is_better=hib)
    test = _test(diffs, rules, rules.margin)
    other_p = [_raw_p(o.test, reference.test, rules, hib, rules.margin) for o in others]
    p_corrected = adjust_pvalues([test.p, *other_p], rules.correction, n_comparisons)[0]
    return {
        "reference": reference.name,
        "seeds": sorted(diffs),
        "diffs": dict(diffs),
        "failed_seeds": failed,
        **test.as_dict(),
        "margin": rules.margin,
        "p_raw": test.p,
        "p_corrected": p_corrected,
        "family_p_raw": [test.p, *other_p],
        "significant": bool(p_corrected < rules.alpha),
        **_power(test, rules, rules.margin, n_comparisons),
    }


def _collapses(scores: Mapping[int, float], rules: ClassificationRules, sign: float) -> dict[str, Any]:
    """Diverged and collapsed seeds of one finalist's own runs, scores oriented so that a drop is a collapse:
    an outlier below its own median by more than ``collapse_margin`` and ``collapse_spreads`` robust sds."""
    values = {s: sign * float(v) for s, v in scores.items()}
    finite = sorted(v for v in values.values() if math.isfinite(v))
    median = float(statistics.median(finite)) if finite else math.nan
    # Not ordinary seed noise: 1.4826 * the median absolute deviation estimates the bulk's sd.
    robust_sd = 1.4826 * statistics.median(abs(v - median) for v in finite) if finite else math.nan
    floor = median - max(rules.collapse_margin, rules.collapse_spreads * robust_sd)
    collapsed = sorted(s for s, v in values.items() if math.isfinite(v) and v < floor)
    return {
        "median": sign * median,
        "std": statistics.stdev(finite) if len(finite) > 1 else math.nan,
        "collapse_floor": sign * floor if finite else math.nan,
        "diverged_seeds": sorted(s for s, v in values.items() if not math.isfinite(v)),
        "collapsed_seeds": collapsed,
        "collapse_fraction": len(collapsed) / len(values) if values else 0.0,
    }


def _stability(
    candidate: FinalistEvidence,
    baseline: FinalistEvidence,
    gain: float,
    rules: ClassificationRules,
    hib: bool,
) -> dict[str, Any]:
    """Rule 3's numbers, from the candidate's own final runs (a reference's bad seed is not its own).

    Collapses count against it when more than ``max_collapse_fraction`` of its seeds collapse *and* more
    often than the baseline's own runs do under the same definition: on a task whose baseline collapses on
    14 % of seeds (FedAvg on tcga_brca), a candidate that collapses less often is not the unstable one.
    """
    sign = 1.0 if hib else -1.0
    own = _collapses(candidate.test, rules, sign)
    reference = _collapses(baseline.test, rules, sign)["collapse_fraction"]
    allowed = max(rules.max_collapse_fraction, reference)
    return {
        **own,
        "baseline_collapse_fraction": reference,
        "too_many_collapses": bool(own["collapse_fraction"] > allowed),
        "spread_swamps_gain": bool(math.isfinite(own["std"]) and own["std"] > rules.spread_ratio * abs(gain)),
    }


def _heldout(
    candidate: FinalistEvidence,
    reference: FinalistEvidence,
    others: Sequence[FinalistEvidence],
    rules: ClassificationRules,
    hib: bool,
    n_comparisons: int,
) -> dict[str, Any]:
    """Per held-out setting: non-inferiority within the margin (H0: mean <= -margin), corrected over the
    finalists, and its mean; then the mean over settings (each setting weighs the same)."""
    settings: dict[str, Any] = {}
    for setting in sorted(set(candidate.heldout) & set(reference.heldout)):
        ref = reference.heldout[setting]
        diffs, failed = paired_differences(candidate.heldout[setting], ref, higher_is_better=hib)
        test = _test(diffs, rules, -rules.margin, bootstrap=False)
        other_p = [_raw_p(o.heldout.get(setting, {}), ref, rules, hib, -rules.margin) for o in others]
        p_corrected = adjust_pvalues([test.p, *other_p], rules.correction, n_comparisons)[0]
        settings[setting] = {
            "diffs": diffs,
            "failed_seeds": failed,
            "n": test.n,
            "mean": test.mean,
            "std": test.std,
            "p_raw": test.p,
            "p_corrected": p_corrected,
            "non_inferior": bool(p_corrected < rules.alpha),
            "note": test.note,
            **_power(test, rules, -rules.margin, n_comparisons),
        }
    means = [s["mean"] for s in settings.values() if math.isfinite(s["mean"])]
    return {
        "reference": reference.name,
        "margin": rules.margin,
        "settings": settings,
        "mean": sum(means) / len(means) if means else math.nan,
        "failed": {k: v["failed_seeds"] for k, v in settings.items() if v["failed_seeds"]},
    }


def _fmt_seeds(seeds: Sequence[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def _powered_text(comparison: Mapping[str, Any]) -> str:
    mde = comparison["mde"]
    if not math.isfinite(mde):
        return f"n = {comparison['n']}, MDE unknown"
    verdict = "powered" if comparison["powered"] else "not powered"
    return f"n = {comparison['n']}, MDE {mde:.4f} ({verdict} for the observed {comparison['mean']:+.4f})"


def classify(
    candidate: FinalistEvidence,
    baseline: FinalistEvidence,
    control: FinalistEvidence | None,
    *,
    rules: ClassificationRules | None = None,
    higher_is_better: bool,
    n_comparisons: int = 1,
    others: Sequence[FinalistEvidence] = (),
) -> Verdict:
    """Label one finalist by the rules in order (see the module docstring and docs/classification.md).

    ``control`` is the best control trial's evidence; ``None`` (or an evidence with arm
    ``"baseline"``) means the control is the baseline itself, so rule 4 coincides with rule 2 and the
    held-out rule compares with the baseline. ``n_comparisons`` is the size of the corrected family
    (the number of agent finalists). ``others`` are the other members of that family: with them the
    Holm correction is exact; members not given count as p = 1 (conservative: for a single finalist
    Holm then equals Bonferroni, ``min(1, n_comparisons * p)``).
    """
    rules = rules if rules is not None else load_rules()
    hib = bool(higher_is_better)
    family = max(int(n_comparisons), 1 + len(others), 1)
    control_is_baseline = _is_baseline(control, baseline)
    reference = baseline if control_is_baseline else control
    assert reference is not None
    reasons: list[str] = []
    numbers: dict[str, Any] = {
        "candidate": candidate.name,
        "arm": candidate.arm,
        "higher_is_better": hib,
        "n_comparisons": family,
        "rules": rules.as_dict(),
        "control_is_baseline": control_is_baseline,
    }

    # Everything measurable is computed up front so a report can show the whole picture.
    numbers["vs_baseline"] = _comparison(candidate, baseline, others, rules, hib, family)
    numbers["vs_control"] = (
        None if control_is_baseline else _comparison(candidate, reference, others, rules, hib, family)
    )
    numbers["stability"] = _stability(candidate, baseline, numbers["vs_baseline"]["mean"], rules, hib)
    numbers["heldout"] = _heldout(candidate, reference, others, rules, hib, family)

    # The first rule that decides gives the label; each appends its reasons, passed or not.
    decided = (
        _rule_search_gain(candidate, baseline, hib, rules, numbers, reasons)
        or _rules_replication(numbers["vs_baseline"], numbers["stability"], rules, family, reasons)
        or _rule_control(numbers["vs_control"], rules, reasons)
        or _rule_heldout(numbers["heldout"], control_is_baseline, rules, reasons)
    )
    if decided is None:
        reasons.append("rule 6: repeated on fresh seeds, beyond the tuned control, and on held-out settings")
        decided = (MECHANISM, 6)
    label, rule = decided
    numbers["rule"] = rule
    return Verdict(label, reasons, numbers, name=candidate.name, arm=candidate.arm)


def _rule_search_gain(
    candidate: FinalistEvidence,
    baseline: FinalistEvidence,
    hib: bool,
    rules: ClassificationRules,
    numbers: dict[str, Any],
    reasons: list[str],
) -> tuple[str, int] | None:
    """Rule 1: a gain in the search at all? Records ``numbers["search"]``."""
    if baseline.search_score is None or not math.isfinite(baseline.search_score):
        raise ValueError(f"the baseline {baseline.name!r} has no search score to compare with")
    sign = 1.0 if hib else -1.0
    cand_search = candidate.search_score
    gain = (
        sign * (cand_search - baseline.search_score)
        if cand_search is not None and math.isfinite(cand_search)
        else math.nan
    )
    numbers["search"] = {"candidate": cand_search, "baseline": baseline.search_score, "gain": gain}
    if not math.isfinite(gain):
        reasons.append("rule 1: no finite search score, so no search gain to test")
        return NO_SEARCH_GAIN, 1
    if gain <= rules.min_search_gain:
        reasons.append(
            f"rule 1: search gain over the baseline {gain:+.4f} <= min_search_gain {rules.min_search_gain:g}"
        )
        return NO_SEARCH_GAIN, 1
    reasons.append(f"rule 1 passed: search gain over the baseline {gain:+.4f} > {rules.min_search_gain:g}")
    return None


def _rules_replication(
    vs_base: dict[str, Any],
    own: dict[str, Any],
    rules: ClassificationRules,
    family: int,
    reasons: list[str],
) -> tuple[str, int] | None:
    """Rules 2-3: does the gain repeat on fresh paired seeds, and are the candidate's own runs stable?"""
    mean, n = vs_base["mean"], vs_base["n"]
    if n == 0:
        reasons.append("rule 2: no common finite test seeds with the baseline, nothing replicates")
        return SINGLE_RUN, 2
    if not mean > 0:
        reasons.append(
            f"rule 2: mean paired test difference vs the baseline {mean:+.4f} <= 0 over {n} seeds: "
            "the search gain does not replicate"
        )
        return SINGLE_RUN, 2
    unstable = []
    if own["diverged_seeds"]:
        unstable.append(f"its run diverged on seed(s) {_fmt_seeds(own['diverged_seeds'])}")
    if own["too_many_collapses"]:
        unstable.append(
            f"{len(own['collapsed_seeds'])} of its seeds ({own['collapse_fraction']:.0%}, more than "
            f"{rules.max_collapse_fraction:.0%} and than the baseline's "
            f"{own['baseline_collapse_fraction']:.0%}) collapse: worse than {own['collapse_floor']:.4f} "
            f"(its own median {own['median']:.4f} less the larger of {rules.collapse_margin:g} and "
            f"{rules.collapse_spreads:g} robust sd) ({_fmt_seeds(own['collapsed_seeds'])})"
        )
    if own["spread_swamps_gain"]:
        unstable.append(
            f"its own seed std {own['std']:.4f} > spread_ratio {rules.spread_ratio:g} x |gain {mean:+.4f}|"
        )
    if unstable:
        reasons.append(f"rule 3: mean vs the baseline {mean:+.4f} > 0 but " + " and ".join(unstable))
        return SEED_SENSITIVE, 3
    p_text = (
        f"one-sided paired t-test of a gain above the margin {rules.margin:g} vs the baseline "
        f"p = {vs_base['p_raw']:.4g}, {rules.correction}-corrected over {family} = "
        f"{vs_base['p_corrected']:.4g}"
    )
    if vs_base["note"]:
        p_text += f" ({vs_base['note']})"
    if not vs_base["significant"]:
        reasons.append(
            f"rule 2: mean vs the baseline {mean:+.4f}, {p_text} >= alpha {rules.alpha:g}: the gain does not "
            f"replicate beyond the margin ({_powered_text(vs_base)})"
        )
        return SINGLE_RUN, 2
    reasons.append(
        f"rules 2-3 passed: mean vs the baseline {mean:+.4f} (own runs stable: std {own['std']:.4f}, "
        f"{len(own['collapsed_seeds'])} collapsed), {p_text} < alpha {rules.alpha:g} "
        f"({_powered_text(vs_base)})"
    )
    return None


def _rule_control(
    vs_ctrl: dict[str, Any] | None, rules: ClassificationRules, reasons: list[str]
) -> tuple[str, int] | None:
    """Rule 4: better than what tuning the baseline's scalars reached? (None: the control is the baseline.)"""
    if vs_ctrl is None:
        reasons.append("rule 4 passed: the control is the baseline, so rule 2 already compared with it")
        return None
    c_text = (
        f"mean vs the control {vs_ctrl['mean']:+.4f} over {vs_ctrl['n']} seeds, one-sided paired t-test of "
        f"a gain above the margin {rules.margin:g} p = {vs_ctrl['p_raw']:.4g}, {rules.correction}-corrected "
        f"{vs_ctrl['p_corrected']:.4g}"
    )
    if vs_ctrl["note"]:
        c_text += f" ({vs_ctrl['note']})"
    if not (vs_ctrl["n"] and vs_ctrl["significant"]):
        reasons.append(
            f"rule 4: {c_text}: not shown better than the tuned control by the margin "
            f"(needs p < {rules.alpha:g}; {_powered_text(vs_ctrl)})"
        )
        return FIXED_SURFACE, 4
    reasons.append(f"rule 4 passed: {c_text} < alpha {rules.alpha:g} ({_powered_text(vs_ctrl)})")
    return None


def _rule_heldout(
    held: dict[str, Any], control_is_baseline: bool, rules: ClassificationRules, reasons: list[str]
) -> tuple[str, int] | None:
    """Rule 5: does it hold on data the search never saw, on every held-out setting?"""
    against = "the baseline" if control_is_baseline else "the control"
    if not held["settings"]:
        reasons.append(f"rule 5: no held-out setting measured for both the candidate and {against}")
        return HELDOUT_FAILURE, 5
    per_setting = ", ".join(
        f"{k} {v['mean']:+.4f} (p {v['p_corrected']:.3g}, n {v['n']})" for k, v in held["settings"].items()
    )
    if held["failed"]:
        failed = "; ".join(f"{k}: seed(s) {_fmt_seeds(v)}" for k, v in held["failed"].items())
        reasons.append(f"rule 5: diverged on held-out runs ({failed})")
        return HELDOUT_FAILURE, 5
    inferior = [k for k, v in held["settings"].items() if not v["non_inferior"]]
    if inferior:
        reasons.append(
            f"rule 5: not shown non-inferior to {against} within the margin {rules.margin:g} on "
            f"{', '.join(inferior)} (one-sided paired t-test, {rules.correction}-corrected, needs p < "
            f"{rules.alpha:g}; per setting: {per_setting})"
        )
        return HELDOUT_FAILURE, 5
    if not held["mean"] > 0:
        reasons.append(
            f"rule 5: held-out mean paired difference vs {against} {held['mean']:+.4f} <= 0 over the "
            f"settings ({per_setting})"
        )
        return HELDOUT_FAILURE, 5
    reasons.append(
        f"rule 5 passed: non-inferior to {against} within {rules.margin:g} on every held-out setting and "
        f"better on average ({held['mean']:+.4f}; {per_setting})"
    )
    return None


def classify_all(
    candidates: Sequence[FinalistEvidence],
    baseline: FinalistEvidence,
    control: FinalistEvidence | None,
    *,
    rules: ClassificationRules | None = None,
    higher_is_better: bool,
    n_comparisons: int | None = None,
) -> list[Verdict]:
    """Classify a family of finalists with the exact Holm correction over all of them."""
    rules = rules if rules is not None else load_rules()
    family = max(n_comparisons or 0, len(candidates))
    return [
        classify(
            cand,
            baseline,
            control,
            rules=rules,
            higher_is_better=higher_is_better,
            n_comparisons=family,
            others=[c for j, c in enumerate(candidates) if j != i],
        )
        for i, cand in enumerate(candidates)
    ]


# --- the survival table ---------------------------------------------------------------------------

SURVIVAL_COLUMNS: dict[str, str] = {
    "profile": "profile",
    "proposed": "candidates proposed",
    "rejected": "rejected by the validator",
    "duplicates": "duplicates",
    "failed": "failed",
    "run": "run",
    "finalists": "finalists",
    "search_gains": "gains in search",
    "repeats": "surviving repeats",
    "control": "surviving the control",
    "heldout": "surviving held-out (mechanisms)",
}
"""Row key -> column header of :func:`survival_table` rows, in column order."""

_COUNT_KEYS = ("proposed", "rejected", "duplicates", "failed", "run")
_PAST_SEARCH = {MECHANISM, FIXED_SURFACE, SINGLE_RUN, SEED_SENSITIVE, HELDOUT_FAILURE}
_PAST_REPEATS = {MECHANISM, FIXED_SURFACE, HELDOUT_FAILURE}
_PAST_CONTROL = {MECHANISM, HELDOUT_FAILURE}


def survival_table(
    verdicts_by_profile: Mapping[str, Sequence[Verdict]],
    counts: Mapping[str, Mapping[str, int]],
    *,
    arm: str | None = None,
) -> list[dict[str, Any]]:
    """Per-profile rows of the survival funnel and a totals row (profile ``"total"``).

    ``counts[profile]`` gives ``proposed``, ``rejected`` (by the validator), ``duplicates``, ``failed`` and
    ``run`` (candidates run in the search); a missing count is ``None`` (rendered ``n/a``). The verdicts
    give the funnel of the finalists: gains in search (label != no search gain), surviving repeats (not a
    single-run artifact nor seed-sensitive), surviving the control (not a fixed-surface tuning effect)
    and surviving held-out (= repeated FL mechanisms). ``arm`` keeps only verdicts of that arm.
    """
    profiles = list(verdicts_by_profile) + [p for p in counts if p not in verdicts_by_profile]
    rows: list[dict[str, Any]] = []
    for profile in profiles:
        verdicts = [v for v in verdicts_by_profile.get(profile, ()) if arm is None or v.arm == arm]
        labels = [v.label for v in verdicts]
        given = counts.get(profile, {})
        row: dict[str, Any] = {"profile": profile}
        for key in _COUNT_KEYS:
            row[key] = int(given[key]) if given.get(key) is not None else None
        row["finalists"] = len(labels)
        row["search_gains"] = sum(label in _PAST_SEARCH for label in labels)
        row["repeats"] = sum(label in _PAST_REPEATS for label in labels)
        row["control"] = sum(label in _PAST_CONTROL for label in labels)
        row["heldout"] = sum(label == MECHANISM for label in labels)
        rows.append(row)
    total: dict[str, Any] = {"profile": "total"}
    for key in SURVIVAL_COLUMNS:
        if key == "profile":
            continue
        known = [r[key] for r in rows if r[key] is not None]
        total[key] = sum(known) if known else None
    rows.append(total)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|")


def render_table_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of ``rows`` (headers from :data:`SURVIVAL_COLUMNS` for its keys)."""
    if not rows:
        return ""
    keys = list(rows[0])
    for row in rows[1:]:
        keys += [k for k in row if k not in keys]
    headers = [SURVIVAL_COLUMNS.get(k, k) for k in keys]
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" if k == "profile" else "---:" for k in keys) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(k)) for k in keys) + " |")
    return "\n".join(lines) + "\n"
