"""Does seed racing make the search find what is there? Recall and winner's-curse rate, racing off vs on.

For each profile and campaign seed, two default campaigns (evolve vs the Optuna control, the profile's
``campaign_runs`` per arm, finals and held-out runs) that differ only in ``campaign.racing``; side by side:

* **recall** — the share of campaigns whose agent finalists include a ``repeated FL mechanism`` (a gain that
  survives the baseline's seeds, the tuned control and the held-out data);
* **winner's-curse rate** — the share of agent finalists classified ``single-run artifact`` (chosen on a
  search score their final seeds do not repeat);
* the runs each arm spent, checked against its budget from the ledger (racing's promotions are charged too).

    .venv/bin/python benchmarks/search_recall.py [synthetic tcga_brca] [--seeds 10] [--eta 3 --rungs 3]
        [--first-seed 0] [--runs-per-arm N] [--final-seeds N] [--set key=value ...] [--workers 2]
        [--data-dir DIR] [--keep DIR]

Defaults: synthetic (alpha = beta = 1, i.e. synthetic(1,1)) and tcga_brca, 10 campaign seeds (3 could not
tell the two apart), the campaign's racing schedule (eta 3, 3 rungs), each profile's own budget — 40
campaigns, about 40 minutes on 2 cores. ``--runs-per-arm``, ``--final-seeds``
and ``--set profile_key=value`` (e.g. ``--set rounds=5``) shrink it for a quick check of the script itself;
numbers from a shrunk run say nothing about the search. Exit 1 if a campaign failed or an arm overspent
its budget.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import data_dir_from  # benchmarks/ is on sys.path when run as a script
from scipy.stats import binomtest, wilcoxon

from afr.campaign import Campaign, CampaignSettings, RunnerSettings
from afr.evaluation import RacingSettings, collect_findings
from afr.evaluation._classify import MECHANISM, SEED_SENSITIVE, SINGLE_RUN
from afr.ledger import Ledger
from afr.profiles import apply_budget, load_profile_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ["synthetic", "tcga_brca"]


def one_campaign(
    profile: str,
    seed: int,
    racing: RacingSettings | None,
    args: argparse.Namespace,
    folder: Path,
) -> dict[str, Any]:
    """Run one default campaign; what its agent finalists were classified as, and its spend per arm."""
    from omegaconf import OmegaConf

    conf = ROOT / "afr" / "conf"
    agent_cfg = OmegaConf.to_container(OmegaConf.load(conf / "agent" / "evolve.yaml"), resolve=True)
    control_cfg = OmegaConf.to_container(OmegaConf.load(conf / "control" / "optuna.yaml"), resolve=True)
    profile_cfg = dict(apply_budget(load_profile_config(profile), None))
    for item in args.set:
        key, _, value = item.partition("=")
        profile_cfg[key] = yaml.safe_load(value)
    runs_per_arm = args.runs_per_arm or int(profile_cfg.get("campaign_runs", 24))
    name = f"recall-{profile}-seed{seed}-{'racing' if racing else 'plain'}"
    settings = CampaignSettings(
        name=name,
        directory=folder / name,
        profile=profile,
        profile_cfg=profile_cfg,
        agent_cfg=agent_cfg,
        control_cfg=control_cfg,
        runs_per_arm=runs_per_arm,
        seed=seed,
        data_dir=str(args.data_dir),
        runner=RunnerSettings(workers=args.workers),
        racing=racing,
        final_seeds=args.final_seeds,
    )
    start = time.perf_counter()
    result = Campaign(settings, echo=lambda _line: None).run()
    wall = time.perf_counter() - start
    ledger = Ledger.for_campaign_dir(settings.directory)
    try:
        findings = collect_findings(ledger, result.campaign_id)
        search = [r for r in ledger.runs(result.campaign_id) if r.stage == "search"]
        spent = {arm: 0 for arm in ("agent", "control")}
        first_seed = min((run.seed for run in search), default=0)
        promoted = 0
        for run in search:
            spent[ledger.candidate(run.candidate_id).arm] += 1
            promoted += run.seed != first_seed  # a promotion: a further search seed
    finally:
        ledger.close()
    labels = [v.label for v in findings.verdicts if v.arm == "agent"]
    # The first-ranked agent finalist's mean paired gain over the baseline on the final seeds (in the metric's
    # better direction): whether selection picked something that repeats at all, margin or not.
    top_gain = next(
        (
            v.numbers["vs_baseline"]["mean"]
            for v in findings.verdicts
            if v.arm == "agent" and v.numbers.get("vs_baseline")
        ),
        None,
    )
    test = {e.arm: statistics.mean(e.test.values()) for e in findings.evidence.values() if e.test}
    test.setdefault("control", test.get("baseline"))  # the control's best trial is the baseline itself
    return {
        "labels": labels,
        "top_gain": top_gain,
        # How strong the tuned control came out: racing also spends the control's runs on promotions, and a
        # weaker control makes "surviving the control" easier; the baseline is the bar where it is higher.
        "control_gain": None if test.get("baseline") is None else test["control"] - test["baseline"],
        "spent": spent,
        "promoted": promoted,
        "budget": runs_per_arm,
        "wall_s": wall,
        "failure": result.failure or findings.partial,
    }


def _mcnemar(off: list[bool], on: list[bool]) -> tuple[int, int, float]:
    """Seeds where only racing had it, seeds where only off had it, McNemar's exact p on those."""
    gained = sum(b and not a for a, b in zip(off, on, strict=True))
    lost = sum(a and not b for a, b in zip(off, on, strict=True))
    return gained, lost, binomtest(gained, gained + lost).pvalue if gained + lost else 1.0


def paired_lines(off: list[dict[str, Any]], on: list[dict[str, Any]]) -> list[str]:
    """Off and on compared campaign seed by campaign seed (the two campaigns of a seed share their agent's
    and control's random streams): recall, and whether the first-ranked agent finalist beats the baseline
    on the final seeds, by McNemar's exact test on the discordant seeds; that finalist's gain, by Wilcoxon's
    signed-rank test on the per-seed differences."""
    gained, lost, p = _mcnemar(
        [MECHANISM in r["labels"] for r in off], [MECHANISM in r["labels"] for r in on]
    )
    lines = [
        f"paired by seed: racing found a mechanism where off did not in {gained}, the reverse in {lost} "
        f"(McNemar exact p = {p:.2f})"
    ]
    pairs = [(a["top_gain"], b["top_gain"]) for a, b in zip(off, on, strict=True)]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if pairs:
        gained, lost, p = _mcnemar([a > 0 for a, _ in pairs], [b > 0 for _, b in pairs])
        diffs = [b - a for a, b in pairs]
        w = wilcoxon(diffs).pvalue if any(diffs) and len(diffs) > 1 else 1.0
        lines.append(
            f"first-ranked finalist beats the baseline with racing only in {gained}, off only in {lost} "
            f"(McNemar exact p = {p:.3f}); its gain on − off: mean {statistics.mean(diffs):+.4f} over "
            f"{len(diffs)} seeds (Wilcoxon p = {w:.3f})"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profiles", nargs="*", help=f"default: {' '.join(DEFAULT)}")
    parser.add_argument("--seeds", type=int, default=10, help="campaign seeds per profile (default 10)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="the first campaign seed (default 0), to add seeds to a run"
    )
    parser.add_argument("--eta", type=int, default=RacingSettings.eta, help="default: the campaign's")
    parser.add_argument("--rungs", type=int, default=RacingSettings.rungs, help="default: the campaign's")
    parser.add_argument("--runs-per-arm", type=int, help="default: the profile's campaign_runs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a profile key")
    parser.add_argument("--final-seeds", type=int, help="default: power-sized by the profile's verdict block")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir")
    parser.add_argument(
        "--keep",
        help="keep the campaigns in this folder (default: a temporary one); campaigns already there resume "
        "(an interrupted run goes on, a finished one is read again: its minutes are then the re-read's)",
    )
    args = parser.parse_args()
    args.data_dir = data_dir_from(args.data_dir)
    racing = RacingSettings(eta=args.eta, rungs=args.rungs)
    names = list(args.profiles or DEFAULT)
    print(
        f"search recall, campaign seeds {args.first_seed}..{args.first_seed + args.seeds - 1} per profile, "
        f"racing eta {args.eta} rungs {args.rungs}, "
        f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
        + (
            f"; NOT DEFAULT: set {args.set}, runs/arm {args.runs_per_arm}, final seeds {args.final_seeds}"
            if args.set or args.runs_per_arm or args.final_seeds
            else ""
        )
    )
    print(
        f"  {'profile':<12} {'racing':<6} {'recall':>9} {'curse':>9} {'seed-sens':>9} {'finalists':>9} "
        f"{'top>base':>9} {'top gain':>8} {'agent runs':>10} {'control runs':>12} {'promoted':>8} "
        f"{'ctrl-base':>9} {'min':>6}"
    )
    bad: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep).resolve() if args.keep else Path(tmp)
        for profile in names:
            rows_by: dict[str, list[dict[str, Any]]] = {}
            for label, setting in (("off", None), ("on", racing)):
                seeds = range(args.first_seed, args.first_seed + args.seeds)
                rows = [one_campaign(profile, s, setting, args, folder) for s in seeds]
                rows_by[label] = rows
                for seed, row in zip(seeds, rows, strict=True):
                    if row["failure"]:
                        bad.append(f"{profile} seed {seed} racing {label}: {row['failure']}")
                    for arm, runs in row["spent"].items():
                        if runs > row["budget"]:
                            where = f"{profile} seed {seed} racing {label}"
                            bad.append(f"{where}: {arm} ran {runs} > {row['budget']}")
                found = sum(MECHANISM in row["labels"] for row in rows)
                finalists = sum(len(row["labels"]) for row in rows)
                cursed = sum(row["labels"].count(SINGLE_RUN) for row in rows)
                unstable = sum(row["labels"].count(SEED_SENSITIVE) for row in rows)
                agent_runs = "/".join(str(row["spent"]["agent"]) for row in rows)
                control_runs = "/".join(str(row["spent"]["control"]) for row in rows)
                promoted = sum(row["promoted"] for row in rows)
                minutes = sum(row["wall_s"] for row in rows) / 60
                gains = [row["control_gain"] for row in rows if row["control_gain"] is not None]
                control_gain = f"{statistics.mean(gains):+.4f}" if gains else "-"
                tops = [row["top_gain"] for row in rows if row["top_gain"] is not None]
                top_share = f"{sum(g > 0 for g in tops):>4}/{len(tops):<4}"
                top_gain = f"{statistics.mean(tops):+.4f}" if tops else "-"
                print(
                    f"  {profile:<12} {label:<6} {found:>4}/{len(rows):<4} {cursed:>4}/{finalists:<4} "
                    f"{unstable:>4}/{finalists:<4} {finalists:>9} {top_share} {top_gain:>8} "
                    f"{agent_runs:>10} {control_runs:>12} {promoted:>8} {control_gain:>9} "
                    f"{minutes:>6.1f}",
                    flush=True,
                )
            for line in paired_lines(rows_by["off"], rows_by["on"]):
                print(f"  {'':<12} {line}", flush=True)
    print(
        "  recall: campaigns whose agent finalists include a repeated FL mechanism; curse: agent finalists "
        "classified single-run artifact; seed-sens: agent finalists classified seed-sensitive (a gain that "
        "repeats in the mean but not stably); top>base: campaigns whose first-ranked agent finalist "
        "beats the baseline on the final seeds (mean paired gain > 0, margin or not); top gain: that gain's "
        "mean; runs: search runs per campaign seed; promoted: runs on a further search seed (both arms); "
        "ctrl-base: the tuned control's mean test minus the baseline's (mean over campaigns)"
    )
    for line in bad:
        print(f"  FAILED: {line}")
    if bad:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
