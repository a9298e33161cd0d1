"""Classification of finalists' gains: every label and rule boundary on synthetic numbers, the
statistics, the rules file kept in step with its documentation, and planted candidates with real
training on ``synthetic`` (FedAdam = a mechanism, an lr-only change = tuning, a lucky baseline copy =
a single-run artifact)."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import stats

from afr.errors import ConfigError
from afr.evaluation._classify import (
    DEFAULT_RULES_PATH,
    FIXED_SURFACE,
    HELDOUT_FAILURE,
    LABELS,
    MECHANISM,
    NO_SEARCH_GAIN,
    SEED_SENSITIVE,
    SINGLE_RUN,
    SURVIVAL_COLUMNS,
    ClassificationRules,
    FinalistEvidence,
    Verdict,
    classify,
    classify_all,
    load_rules,
    render_table_markdown,
    survival_table,
)
from afr.evaluation._stats import (
    adjust_pvalues,
    bootstrap_ci,
    holm,
    minimum_detectable_effect,
    paired_differences,
    paired_test,
    seeds_for_effect,
)
from afr.profiles._docs import render_margin_table, with_margin_table

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "classification.md"
SEEDS = [42, 43, 44, 45, 46]
RULES = ClassificationRules()


def ev(name, arm, search, test, heldout=None) -> FinalistEvidence:
    """Evidence with test values given in seed order 42..46 (or as a dict)."""
    test = test if isinstance(test, dict) else dict(zip(SEEDS, test, strict=True))
    held = {
        k: v if isinstance(v, dict) else dict(zip(SEEDS, v, strict=True)) for k, v in (heldout or {}).items()
    }
    return FinalistEvidence(name, arm, search, test, held)


BASE = ev("baseline", "baseline", 0.50, [0.0] * 5, {"h1": [0.0] * 5, "h2": [0.0] * 5})
STRONG = [0.10, 0.12, 0.11, 0.13, 0.09]  # a clear, steady gain
CTRL = ev("control#7", "control", 0.55, [0.05, 0.06, 0.04, 0.05, 0.06], {"h1": [0.02] * 5, "h2": [0.02] * 5})


def label(cand, control=CTRL, baseline=BASE, **kw) -> Verdict:
    kw.setdefault("rules", RULES)
    kw.setdefault("higher_is_better", True)
    return classify(cand, baseline, control, **kw)


# --- the rules file and its documentation -----------------------------------------------------------


def test_shipped_rules_are_the_dataclass_defaults() -> None:
    assert load_rules() == ClassificationRules()
    raw = yaml.safe_load(DEFAULT_RULES_PATH.read_text())
    assert set(raw) | {"margin"} == set(ClassificationRules().as_dict())  # the margin is the profile's
    assert "margin" not in raw


def test_every_threshold_in_the_yaml_is_in_the_doc_with_its_value() -> None:
    raw = yaml.safe_load(DEFAULT_RULES_PATH.read_text())
    doc = DOC.read_text()
    rows = dict(re.findall(r"^\|\s*`(\w+)`\s*\|\s*`([^`]+)`\s*\|", doc, flags=re.M))
    for key, value in raw.items():
        assert key in rows, f"docs/classification.md has no table row for `{key}`"
        assert yaml.safe_load(rows[key]) == value, f"{key}: doc says {rows[key]}, YAML says {value}"
    assert set(rows) == set(raw), f"doc rows without a YAML setting: {sorted(set(rows) - set(raw))}"
    for name in LABELS:
        assert f"`{name}`" in doc


def test_the_margin_table_is_up_to_date() -> None:
    text = DOC.read_text()
    assert with_margin_table(text, render_margin_table()) == text, "run `python -m afr.profiles margins`"


def test_load_rules_overrides_and_refusals(tmp_path: Path) -> None:
    assert load_rules(alpha=0.1).alpha == 0.1
    path = tmp_path / "r.yaml"
    path.write_text("alpha: 0.01\ncollapse_margin: 1\n")
    rules = load_rules(path)
    assert rules.alpha == 0.01 and rules.collapse_margin == 1.0 and isinstance(rules.collapse_margin, float)
    path.write_text("alpah: 0.01\n")
    with pytest.raises(ConfigError, match="alpah"):
        load_rules(path)
    for bad in (
        {"alpha": 1.5},
        {"correction": "fdr"},
        {"collapse_margin": -1.0},
        {"bootstrap_resamples": 1.5},
    ):
        with pytest.raises(ConfigError):
            ClassificationRules(**bad)
    with pytest.raises(ConfigError, match="no classification rules"):
        load_rules(tmp_path / "missing.yaml")


def test_evaluation_code_does_not_import_agents_or_controls() -> None:
    for name in ("_classify.py", "_stats.py"):
        tree = ast.parse((ROOT / "afr" / "evaluation" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                assert not re.search(r"(^|\.)(agents|controls)(\.|$)", module), (name, module)
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith(("afr.agents", "afr.controls")) for a in node.names)


# --- statistics ------------------------------------------------------------------------------------------


def test_paired_differences_orient_and_pair_by_seed() -> None:
    d, failed = paired_differences({1: 0.9, 2: 0.8, 3: 0.7}, {1: 0.8, 2: 0.9, 4: 0.1}, higher_is_better=True)
    assert d == pytest.approx({1: 0.1, 2: -0.1}) and failed == []
    d, _ = paired_differences({1: 0.9, 2: 0.8}, {1: 0.8, 2: 0.9}, higher_is_better=False)
    assert d == pytest.approx({1: -0.1, 2: 0.1})
    d, failed = paired_differences(
        {1: math.nan, 2: 0.5, 3: 0.5}, {1: 0.4, 2: math.nan, 3: 0.4}, higher_is_better=True
    )
    assert d == pytest.approx({3: 0.1}) and failed == [1]


def test_paired_t_matches_scipy_and_bootstrap_is_seeded() -> None:
    d = [0.03, 0.01, 0.04, -0.01, 0.02]
    test = paired_test(d)
    ref = stats.ttest_1samp(d, 0.0, alternative="greater")
    assert test.p == pytest.approx(ref.pvalue) and test.t == pytest.approx(ref.statistic)
    assert test.std == pytest.approx(np.std(d, ddof=1))
    assert test.ci_low < np.mean(d) < test.ci_high
    assert bootstrap_ci(d) == bootstrap_ci(d) == (test.ci_low, test.ci_high)
    longer = np.random.default_rng(5).normal(size=40)
    assert bootstrap_ci(longer, seed=1) != bootstrap_ci(longer, seed=0)


def test_degenerate_tests() -> None:
    assert paired_test([0.02] * 5).p == 0.0
    assert paired_test([0.0] * 5).p == 1.0
    assert paired_test([-0.02] * 5).p == 1.0
    # zero variance is decided by the margin, never by p = 0 alone: +0.001 on every seed is no gain at 0.01
    assert paired_test([0.001] * 5, margin=0.01).p == 1.0
    assert paired_test([0.011] * 5, margin=0.01).p == 0.0
    assert paired_test([-0.005] * 5, margin=-0.01).p == 0.0  # non-inferior within 0.01
    one = paired_test([0.5])
    assert one.p == 1.0 and "at least 2" in one.note
    assert paired_test([]).p == 1.0


def test_margin_test_matches_scipy() -> None:
    d = [0.03, 0.01, 0.04, -0.01, 0.02]
    for margin in (0.01, -0.02):
        ref = stats.ttest_1samp(np.array(d) - margin, 0.0, alternative="greater")
        assert paired_test(d, margin=margin).p == pytest.approx(ref.pvalue)
    assert paired_test(d, margin=0.01).p > paired_test(d).p > paired_test(d, margin=-0.02).p


def test_minimum_detectable_effect_and_seed_count() -> None:
    # the textbook approximation (t quantiles) and the exact noncentral-t answer agree closely
    for sd, n, alpha in ((0.104, 41, 0.05 / 3), (0.04, 19, 0.05 / 3), (0.019, 11, 0.05)):
        approx = (stats.t.ppf(1 - alpha, n - 1) + stats.t.ppf(0.8, n - 1)) * sd / math.sqrt(n)
        assert minimum_detectable_effect(sd, n, alpha) == pytest.approx(approx, rel=0.02)
    # the power at the MDE is 80 % by construction, checked by simulation
    sd, n, alpha = 0.05, 10, 0.05
    mde = minimum_detectable_effect(sd, n, alpha)
    rng = np.random.default_rng(0)
    draws = rng.normal(mde, sd, size=(4000, n))
    hits = stats.ttest_1samp(draws, 0.0, axis=1, alternative="greater").pvalue < alpha
    assert hits.mean() == pytest.approx(0.8, abs=0.03)
    # more seeds, smaller MDE; the seed count is the fewest that reaches the target
    assert minimum_detectable_effect(0.1, 40, 0.05) < minimum_detectable_effect(0.1, 10, 0.05)
    n = seeds_for_effect(0.104, 0.05, 0.05 / 3)
    assert (
        minimum_detectable_effect(0.104, n, 0.05 / 3)
        <= 0.05
        < minimum_detectable_effect(0.104, n - 1, 0.05 / 3)
    )
    assert seeds_for_effect(0.1, 1e-6, 0.05, at_most=30) == 30
    assert (
        math.isnan(minimum_detectable_effect(0.1, 1, 0.05)) and minimum_detectable_effect(0.0, 5, 0.05) == 0
    )


def test_holm_and_bonferroni() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.02], n_comparisons=3) == pytest.approx([0.06])  # unknown members count as p = 1
    assert adjust_pvalues([0.02, 0.3], "bonferroni", 4) == pytest.approx([0.08, 1.0])
    assert adjust_pvalues([0.02, 0.3], "none") == [0.02, 0.3]
    with pytest.raises(ValueError):
        adjust_pvalues([0.1], "fdr")


def test_wilcoxon_floor_claimed_in_the_doc() -> None:
    p = stats.wilcoxon([1, 2, 3, 4, 5], alternative="greater").pvalue
    assert p == pytest.approx(1 / 32)
    assert holm([p, p], n_comparisons=2)[0] > 0.05
    assert "1/32" in DOC.read_text()


# --- every label, every boundary ---------------------------------------------------------------------------


def test_repeated_mechanism_with_the_numbers_of_its_path() -> None:
    v = label(ev("agent#1", "agent", 0.6, STRONG, {"h1": [0.05] * 5, "h2": [0.04] * 5}))
    assert v.label == MECHANISM and v.rule == 6 and v.name == "agent#1" and v.arm == "agent"
    n = v.numbers
    assert n["search"]["gain"] == pytest.approx(0.1)
    assert n["vs_baseline"]["diffs"] == pytest.approx(dict(zip(SEEDS, STRONG, strict=True)))
    assert n["vs_baseline"]["mean"] == pytest.approx(np.mean(STRONG))
    assert n["vs_baseline"]["std"] == pytest.approx(np.std(STRONG, ddof=1))
    assert n["vs_baseline"]["p_raw"] <= n["vs_baseline"]["p_corrected"] < 0.05
    assert n["vs_control"]["mean"] == pytest.approx(np.mean(STRONG) - 0.052)
    assert n["heldout"]["mean"] == pytest.approx(0.025) and n["heldout"]["reference"] == "control#7"
    assert n["vs_baseline"]["ci_low"] < n["vs_baseline"]["mean"] < n["vs_baseline"]["ci_high"]
    assert len(v.reasons) == 5 and v.reasons[-1].startswith("rule 6")


def test_no_search_gain_boundary() -> None:
    assert label(ev("a", "agent", 0.50, STRONG)).label == NO_SEARCH_GAIN  # equal: no gain
    assert label(ev("a", "agent", 0.49, STRONG)).label == NO_SEARCH_GAIN
    assert label(ev("a", "agent", None, STRONG)).label == NO_SEARCH_GAIN
    assert label(ev("a", "agent", math.nan, STRONG)).label == NO_SEARCH_GAIN
    strict = ClassificationRules(min_search_gain=0.25)
    assert label(ev("a", "agent", 0.75, STRONG), rules=strict).label == NO_SEARCH_GAIN
    assert label(ev("a", "agent", 0.7501, STRONG), rules=strict).label != NO_SEARCH_GAIN
    with pytest.raises(ValueError, match="no search score"):
        label(ev("a", "agent", 0.6, STRONG), baseline=ev("b", "baseline", None, [0.0] * 5))


def test_single_run_artifact_when_the_mean_is_not_positive() -> None:
    v = label(ev("a", "agent", 0.6, [0.2, -0.2, 0.1, -0.1, 0.0]))  # mean 0, very noisy: still an artifact
    assert v.label == SINGLE_RUN and v.rule == 2 and "does not replicate" in v.reasons[-1]
    assert label(ev("a", "agent", 0.6, [-0.01] * 5)).label == SINGLE_RUN
    copy = label(ev("a", "agent", 0.6, [0.0] * 5))  # a bitwise copy of the baseline
    assert copy.label == SINGLE_RUN and copy.numbers["vs_baseline"]["p_raw"] == 1.0


def test_margin_boundary() -> None:
    rules = ClassificationRules(margin=0.125)
    held = {"h1": [0.1] * 5}
    at = label(ev("a", "agent", 0.6, [0.125] * 5, held), rules=rules, control=None)
    assert at.label == SINGLE_RUN and "margin 0.125" in at.reasons[-1]
    assert label(ev("a", "agent", 0.6, [0.1251] * 5, held), rules=rules, control=None).label == MECHANISM
    # rule 4 uses the same margin against the control: +0.118 over it is not enough
    assert label(ev("a", "agent", 0.6, [0.17] * 5, held), rules=rules).label == FIXED_SURFACE


def test_a_tiny_consistent_gain_is_not_a_mechanism() -> None:
    # The review's case: a constant +0.001 over the tuned control on every seed (and with slight noise).
    control = ev("control#7", "control", 0.55, [0.70, 0.72, 0.69, 0.71, 0.70], {"h1": [0.70] * 5})
    noise = np.random.default_rng(3).normal(0, 1e-4, 5)
    for extra in (np.zeros(5), noise):
        test = [v + 0.001 + e for v, e in zip(control.test.values(), extra, strict=True)]
        cand = ev("agent#1", "agent", 0.6, test, {"h1": [0.701] * 5})
        v = label(cand, control=control, rules=ClassificationRules(margin=0.01))
        assert v.label == FIXED_SURFACE, v.reasons
        assert v.numbers["vs_control"]["p_corrected"] > 0.5
    # without a margin (the old default) the same numbers were a mechanism: the margin is what decides
    v = label(cand, control=control, rules=ClassificationRules(margin=0.0))
    assert v.label == MECHANISM


def test_every_comparison_reports_its_power() -> None:
    d = [0.10, 0.12, 0.11, 0.13, 0.09]
    v = label(
        ev("a", "agent", 0.6, d, {"h1": [0.05] * 5, "h2": [0.04] * 5}), rules=ClassificationRules(margin=0.02)
    )
    base = v.numbers["vs_baseline"]
    expected = 0.02 + minimum_detectable_effect(np.std(d, ddof=1), 5, 0.05)
    assert base["mde"] == pytest.approx(expected) and base["powered"] == (np.mean(d) >= expected)
    assert base["powered"] and "MDE" in v.reasons[1] and "powered" in v.reasons[1]
    noisy = label(ev("a", "agent", 0.6, [0.08, -0.01, 0.06, 0.0, 0.02]), n_comparisons=3)
    assert not noisy.numbers["vs_baseline"]["powered"]
    assert noisy.numbers["vs_baseline"]["mde"] > noisy.numbers["vs_baseline"]["mean"]


def test_seed_sensitive_collapse_boundary() -> None:
    # a collapse: the candidate's own score is more than collapse_margin below its own median
    at_margin = label(ev("a", "agent", 0.6, [0.3, 0.3, 0.3, 0.3, 0.25]))  # 0.25 is not < 0.3 - 0.05
    assert at_margin.label != SEED_SENSITIVE
    v = label(ev("a", "agent", 0.6, [0.3, 0.3, 0.3, 0.3, 0.249]))
    assert v.label == SEED_SENSITIVE and v.rule == 3
    assert v.numbers["stability"]["collapsed_seeds"] == [46]
    assert not v.numbers["stability"]["spread_swamps_gain"]  # the collapse alone decides
    assert "46" in v.reasons[-1]
    # one collapse in twenty seeds is within max_collapse_fraction (0.1); three are not
    seeds = list(range(42, 62))
    rare = dict.fromkeys(seeds, 0.3) | {61: 0.2}
    base = ev("b", "baseline", 0.5, dict.fromkeys(seeds, 0.0), {"h1": dict.fromkeys(seeds, 0.0)})
    assert label(ev("a", "agent", 0.6, rare), baseline=base, control=None).label != SEED_SENSITIVE
    often = rare | {59: 0.2, 60: 0.2}
    assert label(ev("a", "agent", 0.6, often), baseline=base, control=None).label == SEED_SENSITIVE


def test_the_references_bad_seed_is_not_the_candidates_instability() -> None:
    # FLamby's tcga_brca case: the baseline collapses on one seed (0.543), the candidate is steady.
    baseline = ev("baseline", "baseline", 0.70, [0.78, 0.77, 0.543, 0.79, 0.78], {"h1": [0.70] * 5})
    steady = ev("agent#1", "agent", 0.75, [0.81, 0.80, 0.79, 0.82, 0.81], {"h1": [0.72] * 5})
    v = label(steady, baseline=baseline, control=None)
    assert (
        v.numbers["stability"]["collapsed_seeds"] == [] and not v.numbers["stability"]["spread_swamps_gain"]
    )
    assert v.label != SEED_SENSITIVE, v.reasons


def test_ordinary_seed_noise_is_not_a_collapse_an_outlier_is() -> None:
    # tcga_brca-like: C-index varies ±0.06 from seed to seed; many seeds sit 0.05 below the median, none is
    # an outlier. One seed at 0.4 (FedAvg's kind of collapse) is.
    seeds = list(range(42, 102))
    noisy = dict(zip(seeds, np.random.default_rng(7).normal(0.83, 0.06, len(seeds)).tolist(), strict=True))
    base = ev("b", "baseline", 0.5, dict.fromkeys(seeds, 0.74), {"h1": dict.fromkeys(seeds, 0.7)})
    below = [s for s, v in noisy.items() if v < np.median(list(noisy.values())) - 0.05]
    assert len(below) > 0.1 * len(seeds)  # the old absolute rule would have called this seed-sensitive
    v = label(ev("a", "agent", 0.6, noisy), baseline=base, control=None)
    assert v.numbers["stability"]["collapsed_seeds"] == [] and v.label != SEED_SENSITIVE
    broken = dict(noisy) | dict.fromkeys(seeds[:7], 0.4)  # 7 of 60 runs collapse: 12 %
    w = label(ev("a", "agent", 0.6, broken), baseline=base, control=None)
    assert w.label == SEED_SENSITIVE and w.numbers["stability"]["collapsed_seeds"] == seeds[:7]
    # ... unless the baseline itself collapses more often (FedAvg on tcga_brca): then it is the task's noise
    shaky = dict(noisy) | dict.fromkeys(seeds[-9:], 0.3)  # 9 of 60 = 15 %
    shaky_base = ev("b", "baseline", 0.5, shaky, base.heldout)
    x = label(ev("a", "agent", 0.6, broken), baseline=shaky_base, control=None)
    assert x.numbers["stability"]["baseline_collapse_fraction"] == pytest.approx(0.15)
    assert not x.numbers["stability"]["too_many_collapses"] and "collapse" not in x.reasons[-1]


def test_seed_sensitive_spread_boundary() -> None:
    d = [0.2, -0.04, 0.01, 0.15, -0.03]
    v = label(ev("a", "agent", 0.6, d))
    assert v.label == SEED_SENSITIVE and v.numbers["stability"]["spread_swamps_gain"]
    assert v.numbers["stability"]["collapsed_seeds"] == []
    ratio = np.std(d, ddof=1) / np.mean(d)
    loose = ClassificationRules(spread_ratio=ratio * (1 + 1e-9))
    tight = ClassificationRules(spread_ratio=ratio * (1 - 1e-9))
    assert label(ev("a", "agent", 0.6, d), rules=tight).label == SEED_SENSITIVE
    assert label(ev("a", "agent", 0.6, d), rules=loose).label == SINGLE_RUN  # not noisy enough, p > alpha


def test_a_diverged_seed_is_seed_sensitive() -> None:
    v = label(ev("a", "agent", 0.6, [0.1, 0.12, math.nan, 0.13, 0.09]))
    assert v.label == SEED_SENSITIVE and v.numbers["stability"]["diverged_seeds"] == [44]
    assert v.numbers["vs_baseline"]["n"] == 4 and v.numbers["vs_baseline"]["failed_seeds"] == [44]


def test_too_few_common_seeds() -> None:
    one = label(ev("a", "agent", 0.6, {42: 0.5}))
    assert one.label == SINGLE_RUN and "at least 2" in one.reasons[-1]
    none = label(ev("a", "agent", 0.6, {7: 0.5, 8: 0.5}))
    assert none.label == SINGLE_RUN and "no common" in none.reasons[-1]


def test_zero_variance_positive_gain_is_significant() -> None:
    v = label(ev("a", "agent", 0.6, [0.1] * 5, {"h1": [0.05] * 5, "h2": [0.05] * 5}), n_comparisons=10)
    assert v.label == MECHANISM
    assert v.numbers["vs_baseline"]["p_raw"] == 0.0 and v.numbers["vs_baseline"]["p_corrected"] == 0.0


def test_holm_correction_changes_a_verdict() -> None:
    d = [0.10, 0.02, 0.09, 0.01, 0.08]  # std < mean, raw p ~ 0.013
    cand = ev("a", "agent", 0.6, d, {"h1": [0.05] * 5, "h2": [0.05] * 5})
    rules = ClassificationRules(collapse_margin=0.1)  # its own seed spread is not what is tested here
    alone = label(cand, control=None, rules=rules)
    p = alone.numbers["vs_baseline"]["p_raw"]
    assert 0.01 < p < 0.05 and alone.label == MECHANISM
    five = label(cand, control=None, n_comparisons=5, rules=rules)
    assert five.label == SINGLE_RUN and five.numbers["vs_baseline"]["p_corrected"] == pytest.approx(5 * p)
    assert "holm-corrected over 5" in five.reasons[-1]
    # Exact Holm with the rest of the family known: four very strong finalists leave p's multiplier at 1.
    strong = [ev(f"s{i}", "agent", 0.6, [0.1 + 0.001 * i] * 5) for i in range(4)]
    exact = label(cand, control=None, n_comparisons=5, others=strong, rules=rules)
    assert exact.label == MECHANISM and exact.numbers["vs_baseline"]["p_corrected"] == pytest.approx(p)
    bonferroni = ClassificationRules(correction="bonferroni", collapse_margin=0.1)
    assert label(cand, control=None, others=strong, rules=bonferroni).label == SINGLE_RUN
    uncorrected = ClassificationRules(correction="none", collapse_margin=0.1)
    assert label(cand, control=None, n_comparisons=5, rules=uncorrected).label == MECHANISM
    verdicts = classify_all([cand, *strong], BASE, None, rules=rules, higher_is_better=True)
    assert verdicts[0].numbers["vs_baseline"]["p_corrected"] == pytest.approx(p)
    assert [v.numbers["n_comparisons"] for v in verdicts] == [5] * 5


def test_fixed_surface_tuning_effect() -> None:
    same_as_control = ev("a", "agent", 0.55, CTRL.test, CTRL.heldout)  # an lr-only copy of the control
    v = label(same_as_control)
    assert v.label == FIXED_SURFACE and v.rule == 4
    assert v.numbers["vs_control"]["p_raw"] == 1.0 and v.numbers["vs_control"]["mean"] == 0.0
    worse = label(ev("a", "agent", 0.6, [0.04, 0.05, 0.03, 0.05, 0.05]))
    assert worse.label == FIXED_SURFACE
    noisy = label(
        ev("a", "agent", 0.6, [0.15, 0.04, 0.12, 0.02, 0.08]), rules=ClassificationRules(collapse_margin=0.1)
    )  # ahead of the control, not significant
    assert noisy.numbers["vs_baseline"]["significant"] and noisy.numbers["vs_control"]["mean"] > 0
    assert noisy.numbers["vs_control"]["p_raw"] > 0.05 and noisy.label == FIXED_SURFACE


def test_heldout_failure_and_its_boundary() -> None:
    loose = ClassificationRules(margin=0.02)
    # every setting non-inferior within the margin, and better on average
    at = label(ev("a", "agent", 0.6, [0.2] * 5, {"h1": [0.03] * 5, "h2": [0.01] * 5}), rules=loose)
    assert at.label == HELDOUT_FAILURE and at.rule == 5 and at.numbers["heldout"]["mean"] == pytest.approx(0)
    assert "on average" not in at.reasons[-1] and "<= 0" in at.reasons[-1]
    above = label(ev("a", "agent", 0.6, [0.2] * 5, {"h1": [0.03] * 5, "h2": [0.0101] * 5}), rules=loose)
    assert above.label == MECHANISM
    # one setting far below hides behind another far above no more: each must be non-inferior
    one_bad = label(ev("a", "agent", 0.6, [0.2] * 5, {"h1": [0.2] * 5, "h2": [-0.1] * 5}), rules=loose)
    assert one_bad.label == HELDOUT_FAILURE and "h2" in one_bad.reasons[-1]
    assert (
        one_bad.numbers["heldout"]["mean"] > 0
        and not one_bad.numbers["heldout"]["settings"]["h2"]["non_inferior"]
    )
    just = label(ev("a", "agent", 0.6, [0.2] * 5, {"h1": [0.1] * 5, "h2": [0.0001] * 5}), rules=loose)
    assert just.label == MECHANISM  # h2 is 0.0199 below the control: within the margin
    beyond = label(ev("a", "agent", 0.6, [0.2] * 5, {"h1": [0.1] * 5, "h2": [-0.0001] * 5}), rules=loose)
    assert beyond.label == HELDOUT_FAILURE  # 0.0201 below: not within it
    assert label(ev("a", "agent", 0.6, STRONG)).label == HELDOUT_FAILURE  # no held-out evidence
    diverged = label(ev("a", "agent", 0.6, STRONG, {"h1": [0.5, 0.5, 0.5, 0.5, math.nan], "h2": [0.5] * 5}))
    assert diverged.label == HELDOUT_FAILURE and "diverged" in diverged.reasons[-1]


def test_heldout_vs_the_baseline_when_the_control_is_the_baseline() -> None:
    cand = ev("a", "agent", 0.6, STRONG, {"h1": [0.01] * 5, "h2": [0.01] * 5})
    assert label(cand).label == HELDOUT_FAILURE  # vs the control (+0.02 held out): worse
    for control in (None, BASE, ev("control#0", "baseline", 0.5, BASE.test, BASE.heldout)):
        v = label(cand, control=control)
        assert v.label == MECHANISM and v.numbers["control_is_baseline"]
        assert v.numbers["vs_control"] is None and v.numbers["heldout"]["reference"] in (
            "baseline",
            "control#0",
        )


def test_lower_is_better_orientation() -> None:
    base = ev("baseline", "baseline", 1.00, [1.0] * 5, {"h": [1.0] * 5})
    ctrl = ev("control", "control", 0.95, [0.95, 0.96, 0.94, 0.95, 0.95], {"h": [0.97] * 5})
    good = ev("a", "agent", 0.90, [0.90, 0.88, 0.89, 0.87, 0.91], {"h": [0.92] * 5})
    v = classify(good, base, ctrl, rules=RULES, higher_is_better=False)
    assert v.label == MECHANISM
    assert v.numbers["search"]["gain"] == pytest.approx(0.10)
    assert v.numbers["vs_baseline"]["mean"] == pytest.approx(0.11)
    assert v.numbers["heldout"]["mean"] == pytest.approx(0.05)
    assert classify(good, base, ctrl, rules=RULES, higher_is_better=True).label == NO_SEARCH_GAIN
    worse_search = ev("a", "agent", 1.01, good.test, good.heldout)
    assert classify(worse_search, base, ctrl, rules=RULES, higher_is_better=False).label == NO_SEARCH_GAIN
    collapse = ev("a", "agent", 0.9, [0.8, 0.8, 0.8, 0.8, 1.06], {"h": [0.9] * 5})  # loss up by 0.06 on 46
    assert classify(collapse, base, ctrl, rules=RULES, higher_is_better=False).label == SEED_SENSITIVE


# --- the survival table -----------------------------------------------------------------------------


def test_survival_table_and_markdown() -> None:
    def v(lbl, arm="agent"):
        return Verdict(lbl, [], {}, name="x", arm=arm)

    verdicts = {
        "synthetic": [v(MECHANISM), v(FIXED_SURFACE), v(SINGLE_RUN), v(MECHANISM, arm="control")],
        "heart_disease": [v(HELDOUT_FAILURE), v(SEED_SENSITIVE), v(NO_SEARCH_GAIN)],
    }
    counts = {
        "synthetic": {"proposed": 30, "rejected": 4, "failed": 2, "run": 24},
        "heart_disease": {"proposed": 28, "rejected": 3, "failed": 1},
    }
    rows = survival_table(verdicts, counts, arm="agent")
    assert [r["profile"] for r in rows] == ["synthetic", "heart_disease", "total"]
    assert rows[0] == {
        "profile": "synthetic", "proposed": 30, "rejected": 4, "duplicates": None, "failed": 2, "run": 24,
        "finalists": 3, "search_gains": 3, "repeats": 2, "control": 1, "heldout": 1,
    }  # fmt: skip
    assert rows[1]["run"] is None and rows[1]["search_gains"] == 2 and rows[1]["repeats"] == 1
    assert rows[1]["control"] == 1 and rows[1]["heldout"] == 0
    assert rows[2] == {
        "profile": "total", "proposed": 58, "rejected": 7, "duplicates": None, "failed": 3, "run": 24,
        "finalists": 6, "search_gains": 5, "repeats": 3, "control": 2, "heldout": 1,
    }  # fmt: skip
    assert survival_table(verdicts, counts)[0]["heldout"] == 2  # no arm filter
    md = render_table_markdown(rows)
    lines = md.strip().splitlines()
    assert lines[0] == "| " + " | ".join(SURVIVAL_COLUMNS.values()) + " |"
    assert len(lines) == 2 + 3 and "| n/a |" in lines[3] and lines[-1].startswith("| total | 58 |")
    assert render_table_markdown([]) == ""


# --- planted candidates, real training ------------------------------------------------------------------

BUDGET = {"rounds": 10, "local_steps": 20}  # ~0.3 s a run; FedAdam clearly beats tuned FedAvg here
LR_GRID = (0.01, 0.03, 0.1)  # the control's tiny grid (0.01 = the baseline's default)
HELDOUT = {"alpha0.5_beta0.5": {"alpha": 0.5, "beta": 0.5}, "fresh_draw": {"data_seed": 1}}
LUCKY_SEEDS = (0, 1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def planted():
    from afr.engine import run_federation
    from afr.profiles import make_profile
    from afr.recipe import FedAdam, FedAvg

    main = make_profile("synthetic", **BUDGET)
    heldout = {name: make_profile("synthetic", **BUDGET, **over) for name, over in HELDOUT.items()}
    search_seed = main.search_seeds[0]

    def val(cls, scalars, seed):
        result = run_federation(main, main.make_recipe(cls, scalars), seed, stage="search")
        return main.evaluate(result.build_model(main), main.data("val")).mean

    def finals(cls, scalars, name, arm, search_score):
        def scores(profile):
            out = {}
            for seed in profile.final_seeds:
                result = run_federation(profile, profile.make_recipe(cls, scalars), seed, stage="final")
                out[seed] = profile.evaluate(result.build_model(profile), profile.data("test")).mean
            return out

        held = {setting: scores(profile) for setting, profile in heldout.items()}
        return FinalistEvidence(name, arm, search_score, scores(main), held)

    grid = {lr: val(FedAvg, {"lr": lr}, search_seed) for lr in LR_GRID}
    default_lr = main.make_recipe(FedAvg).lr
    best_lr = max(grid, key=grid.get)
    baseline = finals(FedAvg, {}, "baseline", "baseline", grid[default_lr])
    control = finals(FedAvg, {"lr": best_lr}, f"control(lr={best_lr})", "control", grid[best_lr])
    fedadam = finals(FedAdam, {}, "agent#fedadam", "agent", val(FedAdam, {}, search_seed))
    # (b) FedAvg with only the lr changed to the control's: the same runs as the control.
    lr_only = FinalistEvidence("agent#lr-only", "agent", grid[best_lr], control.test, control.heldout)
    # (c) the baseline re-selected for a lucky search draw: best validation over several search seeds.
    draws = {s: (grid[default_lr] if s == search_seed else val(FedAvg, {}, s)) for s in LUCKY_SEEDS}
    lucky = FinalistEvidence(
        "agent#lucky-copy", "agent", max(draws.values()), baseline.test, baseline.heldout
    )
    candidates = [fedadam, lr_only, lucky]
    rules = load_rules(margin=main.verdict.margin)  # the profile's practical margin, as a campaign uses
    verdicts = classify_all(candidates, baseline, control, rules=rules, higher_is_better=True)
    names = ("fedadam", "lr_only", "lucky")
    return {
        "baseline": baseline,
        "control": control,
        "grid": grid,
        "draws": draws,
        "best_lr": best_lr,
        "default_lr": default_lr,
        "verdicts": dict(zip(names, verdicts, strict=True)),
    }


def test_planted_control_is_a_real_tuning_gain(planted) -> None:
    assert planted["best_lr"] != planted["default_lr"]
    assert planted["grid"][planted["best_lr"]] > planted["grid"][planted["default_lr"]]
    base, ctrl = planted["baseline"], planted["control"]
    assert np.mean(list(ctrl.test.values())) > np.mean(list(base.test.values()))


def test_planted_fedadam_is_a_repeated_mechanism(planted) -> None:
    v = planted["verdicts"]["fedadam"]
    assert v.label == MECHANISM, v.reasons
    assert v.numbers["vs_control"]["mean"] > 0.03  # ~0.07 accuracy over tuned FedAvg on every seed
    assert all(d > 0 for d in v.numbers["vs_control"]["diffs"].values())
    assert all(s["mean"] > 0 for s in v.numbers["heldout"]["settings"].values())


def test_planted_lr_only_change_is_a_fixed_surface_effect(planted) -> None:
    v = planted["verdicts"]["lr_only"]
    assert v.label == FIXED_SURFACE, v.reasons
    assert v.numbers["vs_baseline"]["significant"] and v.numbers["vs_control"]["mean"] == 0.0


def test_planted_lucky_copy_is_a_single_run_artifact(planted) -> None:
    v = planted["verdicts"]["lucky"]
    assert v.numbers["search"]["gain"] > 0  # the lucky draw beat the baseline's own search seed
    assert v.label == SINGLE_RUN, v.reasons
    assert v.numbers["vs_baseline"]["mean"] == 0.0
