"""Classify each finalist's gain after the search: replicated, beyond the control, held out?

Pure data in, a labelled verdict out: no training happens here. The rules, their order and their
thresholds are written once, in ``afr/conf/evaluation/default.yaml`` (values) and
``docs/classification.md`` (prose); a test keeps the two in step.

Rules, applied in order (every difference oriented so that positive = better):

1. ``no search gain``   -- the search score does not beat the baseline's by more than ``min_search_gain``;
2. ``single-run artifact`` -- the paired test-split differences vs the baseline have a mean <= 0;
3. ``seed-sensitive``   -- mean > 0, but a seed collapses (d < -``collapse_margin``, or the run diverged)
   or the spread swamps the gain (std > ``spread_ratio`` * |mean|);
   otherwise rule 2 again: mean <= ``min_effect`` or the one-sided paired t-test is not significant
   after the multiple-comparison correction -> ``single-run artifact``;
4. ``fixed-surface tuning effect`` -- not significantly better than the tuned control (same test);
5. ``held-out failure`` -- held-out mean paired difference vs the control (vs the baseline when the
   control is the baseline) <= ``heldout_margin``;
6. ``repeated FL mechanism`` -- everything passed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._stats import CORRECTIONS, PairedTest, adjust_pvalues, paired_differences, paired_test

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
    """Every threshold of the classification (values in ``afr/conf/evaluation/default.yaml``)."""

    min_search_gain: float = 0.0
    min_effect: float = 0.0
    collapse_margin: float = 0.05
    spread_ratio: float = 1.0
    heldout_margin: float = 0.0
    alpha: float = 0.05
    correction: str = "holm"
    bootstrap_resamples: int = 10_000
    bootstrap_level: float = 0.95
    bootstrap_seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 < self.alpha < 1.0:
            problems.append(f"alpha must be in (0, 1), got {self.alpha}")
        if self.correction not in CORRECTIONS:
            problems.append(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        for name in ("min_search_gain", "min_effect", "collapse_margin", "spread_ratio"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                problems.append(f"{name} must be a finite number >= 0, got {value!r}")
        if not (isinstance(self.heldout_margin, int | float) and math.isfinite(self.heldout_margin)):
            problems.append(f"heldout_margin must be a finite number, got {self.heldout_margin!r}")
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


def _test(diffs: Mapping[int, float], rules: ClassificationRules, *, bootstrap: bool = True) -> PairedTest:
    return paired_test(
        diffs,
        resamples=rules.bootstrap_resamples if bootstrap else 0,
        level=rules.bootstrap_level,
        seed=rules.bootstrap_seed,
    )


def _raw_p(
    candidate: FinalistEvidence, reference: FinalistEvidence, rules: ClassificationRules, hib: bool
) -> float:
    diffs, _ = paired_differences(candidate.test, reference.test, higher_is_better=hib)
    return _test(diffs, rules, bootstrap=False).p


def _comparison(
    candidate: FinalistEvidence,
    reference: FinalistEvidence,
    others: Sequence[FinalistEvidence],
    rules: ClassificationRules,
    hib: bool,
    n_comparisons: int,
) -> dict[str, Any]:
    diffs, failed = paired_differences(candidate.test, reference.test, higher_is_better=hib)
    test = _test(diffs, rules)
    other_p = [_raw_p(o, reference, rules, hib) for o in others]
    p_corrected = adjust_pvalues([test.p, *other_p], rules.correction, n_comparisons)[0]
    collapsed = sorted([s for s, d in diffs.items() if d < -rules.collapse_margin] + failed)
    spread = math.isfinite(test.std) and test.std > rules.spread_ratio * abs(test.mean)
    return {
        "reference": reference.name,
        "seeds": sorted(diffs),
        "diffs": dict(diffs),
        "failed_seeds": failed,
        **test.as_dict(),
        "p_raw": test.p,
        "p_corrected": p_corrected,
        "family_p_raw": [test.p, *other_p],
        "significant": bool(p_corrected < rules.alpha),
        "collapsed_seeds": collapsed,
        "spread_swamps_gain": bool(spread),
    }


def _heldout(candidate: FinalistEvidence, reference: FinalistEvidence, hib: bool) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for setting in sorted(set(candidate.heldout) & set(reference.heldout)):
        diffs, failed = paired_differences(
            candidate.heldout[setting], reference.heldout[setting], higher_is_better=hib
        )
        mean = sum(diffs.values()) / len(diffs) if diffs else math.nan
        settings[setting] = {"diffs": diffs, "failed_seeds": failed, "mean": mean}
    means = [s["mean"] for s in settings.values() if math.isfinite(s["mean"])]
    return {
        "reference": reference.name,
        "settings": settings,
        "mean": sum(means) / len(means) if means else math.nan,
        "failed": {k: v["failed_seeds"] for k, v in settings.items() if v["failed_seeds"]},
    }


def _fmt_seeds(seeds: Sequence[int]) -> str:
    return ", ".join(str(s) for s in seeds)


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
    numbers["heldout"] = _heldout(candidate, reference, hib)

    # The first rule that decides gives the label; each appends its reasons, passed or not.
    decided = (
        _rule_search_gain(candidate, baseline, hib, rules, numbers, reasons)
        or _rules_replication(numbers["vs_baseline"], rules, family, reasons)
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
    vs_base: dict[str, Any], rules: ClassificationRules, family: int, reasons: list[str]
) -> tuple[str, int] | None:
    """Rules 2-3: does the gain repeat on fresh paired seeds, and is it stable across them?"""
    mean, std, n = vs_base["mean"], vs_base["std"], vs_base["n"]
    if vs_base["failed_seeds"]:
        reasons.append(f"note: the candidate diverged on seed(s) {_fmt_seeds(vs_base['failed_seeds'])}")
    if n == 0:
        reasons.append("rule 2: no common finite test seeds with the baseline, nothing replicates")
        return SINGLE_RUN, 2
    if not mean > 0:
        reasons.append(
            f"rule 2: mean paired test difference vs the baseline {mean:+.4f} <= 0 over {n} seeds: "
            "the search gain does not replicate"
        )
        return SINGLE_RUN, 2
    if vs_base["collapsed_seeds"] or vs_base["spread_swamps_gain"]:
        why = []
        if vs_base["collapsed_seeds"]:
            why.append(
                f"seed(s) {_fmt_seeds(vs_base['collapsed_seeds'])} collapse (difference < "
                f"-{rules.collapse_margin:g} or diverged)"
            )
        if vs_base["spread_swamps_gain"]:
            why.append(f"std {std:.4f} > spread_ratio {rules.spread_ratio:g} x |mean {mean:+.4f}|")
        reasons.append(f"rule 3: mean vs the baseline {mean:+.4f} > 0 but " + " and ".join(why))
        return SEED_SENSITIVE, 3
    if mean <= rules.min_effect:
        reasons.append(f"rule 2: mean vs the baseline {mean:+.4f} <= min_effect {rules.min_effect:g}")
        return SINGLE_RUN, 2
    p_text = (
        f"one-sided paired t-test vs the baseline p = {vs_base['p_raw']:.4g}, "
        f"{rules.correction}-corrected over {family} = {vs_base['p_corrected']:.4g}"
    )
    if vs_base["note"]:
        p_text += f" ({vs_base['note']})"
    if not vs_base["significant"]:
        reasons.append(f"rule 2: {p_text} >= alpha {rules.alpha:g}: the gain does not replicate")
        return SINGLE_RUN, 2
    reasons.append(
        f"rules 2-3 passed: mean vs the baseline {mean:+.4f} (std {std:.4f}, no collapse), {p_text} "
        f"< alpha {rules.alpha:g}"
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
        f"mean vs the control {vs_ctrl['mean']:+.4f} over {vs_ctrl['n']} seeds, one-sided paired "
        f"t-test p = {vs_ctrl['p_raw']:.4g}, {rules.correction}-corrected {vs_ctrl['p_corrected']:.4g}"
    )
    if vs_ctrl["note"]:
        c_text += f" ({vs_ctrl['note']})"
    if not (vs_ctrl["n"] and vs_ctrl["mean"] > rules.min_effect and vs_ctrl["significant"]):
        reasons.append(
            f"rule 4: {c_text}: not significantly better than the tuned control "
            f"(needs mean > {rules.min_effect:g} and p < {rules.alpha:g})"
        )
        return FIXED_SURFACE, 4
    reasons.append(f"rule 4 passed: {c_text} < alpha {rules.alpha:g}")
    return None


def _rule_heldout(
    held: dict[str, Any], control_is_baseline: bool, rules: ClassificationRules, reasons: list[str]
) -> tuple[str, int] | None:
    """Rule 5: does it hold on settings the search never saw?"""
    against = "the baseline" if control_is_baseline else "the control"
    if not held["settings"]:
        reasons.append(f"rule 5: no held-out setting measured for both the candidate and {against}")
        return HELDOUT_FAILURE, 5
    per_setting = ", ".join(f"{k} {v['mean']:+.4f}" for k, v in held["settings"].items())
    if held["failed"]:
        failed = "; ".join(f"{k}: seed(s) {_fmt_seeds(v)}" for k, v in held["failed"].items())
        reasons.append(f"rule 5: diverged on held-out runs ({failed})")
        return HELDOUT_FAILURE, 5
    if not held["mean"] > rules.heldout_margin:
        reasons.append(
            f"rule 5: held-out mean paired difference vs {against} {held['mean']:+.4f} "
            f"<= heldout_margin {rules.heldout_margin:g} ({per_setting})"
        )
        return HELDOUT_FAILURE, 5
    reasons.append(
        f"rule 5 passed: held-out mean paired difference vs {against} {held['mean']:+.4f} "
        f"> {rules.heldout_margin:g} ({per_setting})"
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
    "rejected": "rejected",
    "failed": "failed",
    "run": "run",
    "finalists": "finalists",
    "search_gains": "gains in search",
    "repeats": "surviving repeats",
    "control": "surviving the control",
    "heldout": "surviving held-out (mechanisms)",
}
"""Row key -> column header of :func:`survival_table` rows, in column order."""

_COUNT_KEYS = ("proposed", "rejected", "failed", "run")
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

    ``counts[profile]`` gives ``proposed``, ``rejected``, ``failed`` and ``run`` (candidates run in the
    search); a missing count is ``None`` (rendered ``n/a``). The verdicts give the funnel of the
    finalists: gains in search (label != no search gain), surviving repeats (not a single-run
    artifact nor seed-sensitive), surviving the control (not a fixed-surface tuning effect) and
    surviving held-out (= repeated FL mechanisms). ``arm`` keeps only verdicts of that arm.
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
