"""Null calibration of the classification: how often does a candidate that is NOT a new mechanism get
called "repeated FL mechanism"?

Null candidates are statistically identical to the baseline FedAvg (``--copies-of baseline``) or
to the tuned scalar control (``--copies-of control``) but not bitwise identical: null copy ``i``
was "selected" by a search under its own search seed (``search_seed + i``, so its search score is a
genuine single-run draw) and its final runs use hidden seed offsets (``seed + 1000 * i`` for each
final seed), as a real re-selection would. They go through the protocol of ``afr.evaluation``
against one set of baseline and control final runs (the profile's final seeds), with the Holm
correction within consecutive families of ``--holm-family`` nulls (default 3, one campaign's
``top_k`` agent finalists; ``--holm-family N`` with N = ``--n`` treats all nulls as one family).
Held-out runs are made only for nulls that reach rule 5 (rules 1-4 never read them).

    python benchmarks/null_calibration.py [--n 20] [--profile synthetic] [--copies-of both] [--holm-family 3]
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
import time
from typing import Any

from _common import data_dir_from  # benchmarks/ is on sys.path when run as a script

from afr.engine import run_federation
from afr.evaluation._classify import LABELS, MECHANISM, FinalistEvidence, classify, classify_all, load_rules
from afr.profiles import make_profile
from afr.recipe import FedAvg

SMALL_BUDGET = {"synthetic": {"rounds": 10, "local_steps": 20}}
LR_MULTIPLIERS = (1.0, 3.0, 10.0)  # the control's tiny grid around the baseline's default lr
OFFSET = 1000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="null candidates per kind of copy (default 20)")
    parser.add_argument("--profile", default="synthetic")
    parser.add_argument(
        "--copies-of",
        choices=("baseline", "control", "both"),
        default="both",
        help="null copies of the baseline FedAvg, of the tuned control, or both (default)",
    )
    parser.add_argument(
        "--holm-family",
        type=int,
        default=3,
        help="finalists per Holm family, as in one campaign (default 3 = campaign.top_k); the nulls are "
        "classified in consecutive families of this size",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="default: 10 on synthetic, else the profile's"
    )
    parser.add_argument("--local-steps", type=int, default=None, help="default: 20 on synthetic")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--rules", default=None, help="classification rules YAML (default: the shipped one)")
    return parser.parse_args(argv)


class Bench:
    """Runs and scores FedAvg variants on the main profile and its held-out settings."""

    def __init__(self, args: argparse.Namespace) -> None:
        budget = dict(SMALL_BUDGET.get(args.profile, {}))
        if args.rounds is not None:
            budget["rounds"] = args.rounds
        if args.local_steps is not None:
            budget["local_steps"] = args.local_steps
        self.data_dir = data_dir_from(args.data_dir) if args.profile != "synthetic" else None
        self.budget = budget
        self.profile = make_profile(args.profile, data_dir=self.data_dir, **budget)
        self.name = args.profile
        settings = getattr(self.profile, "heldout_settings", None)
        self.settings: dict[str, dict[str, Any]] = settings() if callable(settings) else {}
        if not self.settings and args.profile == "synthetic":
            self.settings = {"alpha0.5_beta0.5": {"alpha": 0.5, "beta": 0.5}, "fresh_draw": {"data_seed": 1}}
        self._heldout_profiles: dict[str, Any] = {}
        self.runs = 0

    def heldout_profile(self, setting: str):
        if setting not in self._heldout_profiles:
            cfg = {**self.profile.cfg, **self.settings[setting]}
            self._heldout_profiles[setting] = make_profile(self.name, cfg, data_dir=self.data_dir)
        return self._heldout_profiles[setting]

    def val(self, lr: float, seed: int) -> float:
        p = self.profile
        result = run_federation(p, p.make_recipe(FedAvg, {"lr": lr}), seed, stage="search")
        self.runs += 1
        return p.evaluate(result.build_model(p), p.data("val")).mean

    def test(self, lr: float, seeds: list[int], setting: str | None = None) -> list[float]:
        p = self.profile if setting is None else self.heldout_profile(setting)
        heldout = setting is not None and "heldout_clients" in self.settings[setting]
        out = []
        for seed in seeds:
            result = run_federation(p, p.make_recipe(FedAvg, {"lr": lr}), seed, stage="final")
            self.runs += 1
            data = p.heldout_data() if heldout else p.data("test")
            out.append(p.evaluate(result.build_model(p), data).mean)
        return out

    def heldout(self, lr: float, offset: int) -> dict[str, dict[int, float]]:
        seeds = self.profile.final_seeds
        return {
            setting: dict(zip(seeds, self.test(lr, [s + offset for s in seeds], setting), strict=True))
            for setting in self.settings
        }


def run_family(
    bench: Bench,
    copies_of: str,
    n: int,
    group: int,
    baseline: FinalistEvidence,
    control: FinalistEvidence,
    lrs: dict[str, float],
    rules,
) -> dict[str, Any]:
    """n null copies of the baseline (or of the control), classified in Holm families of ``group``."""
    seeds = bench.profile.final_seeds
    search_seed = bench.profile.search_seeds[0]
    lr = lrs["default"] if copies_of == "baseline" else lrs["best"]
    hib = bench.profile.higher_is_better
    nulls = []
    for i in range(1, n + 1):
        search = bench.val(lr, search_seed + i)
        test = bench.test(lr, [s + OFFSET * i for s in seeds])
        name = f"null-{copies_of}#{i}"
        nulls.append(FinalistEvidence(name, "agent", search, dict(zip(seeds, test, strict=True))))
    verdicts = []
    for first in range(0, n, group):
        family = nulls[first : first + group]
        found = classify_all(
            family, baseline, control, rules=rules, higher_is_better=hib, n_comparisons=group
        )
        # Held-out runs only where rule 5 decides (rules 1-4 never read held-out evidence).
        for k, verdict in enumerate(found):
            if verdict.rule != 5:
                continue
            for reference, ref_lr in ((baseline, lrs["default"]), (control, lrs["best"])):
                if not reference.heldout:
                    reference.heldout.update(bench.heldout(ref_lr, 0))
            null = family[k]
            offset = OFFSET * (first + k + 1)
            full = FinalistEvidence(
                null.name, "agent", null.search_score, null.test, bench.heldout(lr, offset)
            )
            others = [c for j, c in enumerate(family) if j != k]
            found[k] = classify(
                full, baseline, control, rules=rules, higher_is_better=hib, n_comparisons=group, others=others
            )
        verdicts += found
    raw_base = sum(v.numbers["vs_baseline"]["p_raw"] < rules.alpha for v in verdicts)
    raw_ctrl = sum(
        v.numbers["vs_control"]["p_raw"] < rules.alpha for v in verdicts if v.numbers["vs_control"]
    )
    return {
        "verdicts": verdicts,
        "raw_significant_vs_baseline": raw_base,
        "raw_significant_vs_control": raw_ctrl,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    rules = load_rules(args.rules)
    bench = Bench(args)
    profile = bench.profile
    seeds = profile.final_seeds
    search_seed = profile.search_seeds[0]
    default_lr = profile.make_recipe(FedAvg).lr
    sign = 1.0 if profile.higher_is_better else -1.0

    grid = {default_lr * m: bench.val(default_lr * m, search_seed) for m in LR_MULTIPLIERS}
    best_lr = max(grid, key=lambda lr: sign * grid[lr])
    lrs = {"default": default_lr, "best": best_lr}
    baseline = FinalistEvidence(
        "baseline", "baseline", grid[default_lr], dict(zip(seeds, bench.test(default_lr, seeds), strict=True))
    )
    control = FinalistEvidence(
        f"control(lr={best_lr:g})",
        "control",
        grid[best_lr],
        dict(zip(seeds, bench.test(best_lr, seeds), strict=True)),
    )
    budget = ", ".join(f"{k}={v}" for k, v in vars(profile.budget).items())
    print(f"null calibration on {args.profile} ({budget}); rules: {rules.as_dict()}")
    grid_text = ", ".join(f"lr {lr:g}: {score:.4f}" for lr, score in grid.items())
    print(f"control grid on validation (search seed {search_seed}): {grid_text} -> lr {best_lr:g}")
    for ev in (baseline, control):
        mean = sum(ev.test.values()) / len(ev.test)
        print(f"  {ev.name:<16} search {ev.search_score:.4f}  test mean {mean:.4f} over seeds {seeds}")
    if best_lr == default_lr:
        print("  note: the grid kept the default lr, so the control's runs are the baseline's")

    families = ("baseline", "control") if args.copies_of == "both" else (args.copies_of,)
    group = max(1, min(args.holm_family, args.n))
    mechanisms = 0
    for family in families:
        t0 = time.perf_counter()
        out = run_family(bench, family, args.n, group, baseline, control, lrs, rules)
        verdicts = out["verdicts"]
        counts = collections.Counter(v.label for v in verdicts)
        mechanisms += counts[MECHANISM]
        print(
            f"\n{args.n} null copies of the {family} "
            f"(lr {lrs['default' if family == 'baseline' else 'best']:g}; search seeds {search_seed}+i, "
            f"final seeds s+{OFFSET}*i), Holm within families of {group}  [{time.perf_counter() - t0:.0f} s]"
        )
        for name in LABELS:
            print(f"  {name:<28} {counts[name]:>3}")
        gains = sum(v.rule > 1 for v in verdicts)
        means = [v.numbers["vs_baseline"]["mean"] for v in verdicts]
        finite = [m for m in means if math.isfinite(m)]
        print(
            f"  passed rule 1 (search gain): {gains}; mean paired test difference vs baseline over nulls "
            f"{sum(finite) / len(finite):+.4f}"
        )
        print(
            f"  uncorrected one-sided t-tests with p < {rules.alpha:g}: "
            f"vs baseline {out['raw_significant_vs_baseline']}/{args.n}, "
            f"vs control {out['raw_significant_vs_control']}/{args.n}"
        )
        print(f"  called '{MECHANISM}': {counts[MECHANISM]} (target 0, at most 1)")
    seconds = time.perf_counter() - start
    print(f"\n{bench.runs} federated runs in {seconds:.0f} s ({seconds / max(bench.runs, 1):.2f} s a run)")
    ok = mechanisms <= 1
    print(f"{'PASS' if ok else 'FAIL'}: {mechanisms} null(s) called '{MECHANISM}' in total (at most 1)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
