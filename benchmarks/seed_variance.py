"""How noisy is a paired comparison on each profile? The numbers behind each profile's ``verdict:`` block.

For each profile, FedAvg and FedAdam (the profile's per-recipe defaults) train on the whole train split of
the training clients (``stage="final"``, held-out clients set aside as in a campaign's finals) with the same
final seeds; the parent evaluates the test split. Printed per profile: each recipe's mean ± sd, the paired
differences' mean and **sd** (what sizes the finals: ``verdict.paired_sd``), and the final seeds a campaign
needs so that ``margin + MDE <= detect`` at 80 % power and alpha / top_k.

    python benchmarks/seed_variance.py [--profiles synthetic heart_disease tcga_brca] [--seeds 20]
        [--budget cpu] [--top-k 3] [--data-dir DIR]

Exits 1 when a run fails.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

from _common import data_dir_from  # benchmarks/ is on sys.path when run as a script


def measure(name: str, seeds: int, budget: str | None, data_dir, top_k: int) -> dict:
    from afr.engine import run_federation
    from afr.evaluation import load_rules, minimum_detectable_effect, seeds_for_effect
    from afr.profiles import apply_budget, load_profile_config, make_profile
    from afr.recipe import recipe_class

    cfg = apply_budget(load_profile_config(name), budget)
    profile = make_profile(name, cfg, data_dir=data_dir).for_campaign()  # as the finals run it
    test = profile.data("test")
    scores: dict[str, list[float]] = {}
    for recipe_name in ("fedavg", "fedadam"):
        recipe = profile.make_recipe(recipe_class(recipe_name))
        values = []
        for seed in profile.final_seed_list(seeds):
            result = run_federation(profile, recipe, seed, stage="final")
            values.append(profile.evaluate(result.build_model(profile), test).mean)
        scores[recipe_name] = values
    diffs = [a - b for a, b in zip(scores["fedadam"], scores["fedavg"], strict=True)]
    if not all(math.isfinite(d) for d in diffs):
        raise RuntimeError(f"{name}: a run gave a non-finite test metric: {scores}")
    rules = load_rules()
    spec = profile.verdict
    sd = statistics.stdev(diffs)
    alpha = rules.alpha / top_k
    need = None
    if spec.detect is not None:
        need = seeds_for_effect(sd, spec.detect - spec.margin, alpha, rules.power)
    return {
        "profile": name,
        "seeds": seeds,
        "fedavg": (statistics.fmean(scores["fedavg"]), statistics.stdev(scores["fedavg"])),
        "fedadam": (statistics.fmean(scores["fedadam"]), statistics.stdev(scores["fedadam"])),
        "diff": (statistics.fmean(diffs), sd),
        "mde": spec.margin + minimum_detectable_effect(sd, seeds, alpha, rules.power),
        "margin": spec.margin,
        "detect": spec.detect,
        "need": need,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["synthetic", "heart_disease", "tcga_brca"])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", default=None, help="budget preset (e.g. cpu for the LEAF profiles)")
    parser.add_argument("--top-k", type=int, default=3, help="agent finalists a campaign corrects over")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    data_dir = data_dir_from(args.data_dir)
    print(
        "| profile | seeds | FedAvg test | FedAdam test | paired diff mean | paired sd | margin + MDE at n |"
        " detect | final seeds needed |"
    )
    print("|---|---:|---|---|---:|---:|---:|---:|---:|")
    failed = False
    for name in args.profiles:
        try:
            m = measure(name, args.seeds, args.budget, data_dir, args.top_k)
        except Exception as exc:  # report and go on; the exit code says a run failed
            print(f"| {name} | failed: {type(exc).__name__}: {exc} |")
            failed = True
            continue
        print(
            f"| {name} | {m['seeds']} | {m['fedavg'][0]:.4f} ± {m['fedavg'][1]:.4f} | "
            f"{m['fedadam'][0]:.4f} ± {m['fedadam'][1]:.4f} | {m['diff'][0]:+.4f} | {m['diff'][1]:.4f} | "
            f"{m['mde']:.4f} | {m['detect']} | {m['need']} |",
            flush=True,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
