"""How fast is a campaign? A 48 + 48 run campaign (evolve vs the Optuna control) on heart_disease, then its
finals (finalists of both arms and the baseline on the power-sized final seeds, test and held-out).

    .venv/bin/python benchmarks/campaign_speed.py [--runs-per-arm 48] [--workers 2] [--final-seeds N]
        [--no-finals] [--profile heart_disease] [--lookahead 1] [--niceness 0 5] [--data-dir DIR]

Prints, for the search and the finals separately: wall time, runs, the workers' idle share (1 - sum of run
wall times in the workers, each from its fork to its result, / (workers x phase wall)) and the parent's CPU
per run outside training (everything this process does: proposing, validating, recording, saving weights,
evaluating finals on test and held-out data, Optuna); the workers' CPU per run (training plus the sandboxed
child's own start) is read from the zygote's reaped children. Targets: the search phase in < 5 min on 2 cores,
worker idle <= 10 %, parent CPU per run <= 0.3 s. Exit 1 if any run failed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import data_dir_from  # benchmarks/ is on sys.path when run as a script

import afr.campaign._finals as finals_module
from afr.campaign import Campaign, CampaignSettings, RunnerSettings
from afr.ledger import Ledger
from afr.profiles import load_profile_config
from afr.sandbox import RUN_NICENESS

ROOT = Path(__file__).resolve().parents[1]


def children_cpu(pid: int | None) -> float:
    """CPU seconds of the reaped children of ``pid`` (the zygote's sandboxed runs); 0 if unreadable."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # after the ")": state is field 3 of stat(5), so cutime (16) and cstime (17) are at 13 and 14 here
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


class Phases:
    """Marks where the search ends and the finals start and end (wall, this process's CPU, workers' CPU)."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.marks: dict[str, tuple[float, float, float]] = {}
        self.evaluation_cpu = 0.0
        run_finals, evaluate = campaign.run_finals, finals_module._evaluate

        def timed_finals() -> None:
            self.mark("finals_start")
            run_finals()
            self.mark("finals_end")

        def timed_evaluate(*args: Any, **kwargs: Any) -> float:
            before = time.thread_time()  # this thread's CPU only: the workers' threads run meanwhile
            try:
                return evaluate(*args, **kwargs)
            finally:
                self.evaluation_cpu += time.thread_time() - before

        campaign.run_finals = timed_finals  # type: ignore[method-assign]
        finals_module._evaluate = timed_evaluate  # type: ignore[assignment]

    def mark(self, name: str) -> None:
        pool = self.campaign.runner._pool
        zygote = pool.zygote_pid if pool is not None else None
        self.marks[name] = (time.perf_counter(), time.process_time(), children_cpu(zygote))

    def span(self, start: str, end: str) -> tuple[float, float, float]:
        (w0, c0, z0), (w1, c1, z1) = self.marks[start], self.marks[end]
        return w1 - w0, c1 - c0, z1 - z0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs-per-arm", type=int, default=48)
    parser.add_argument("--profile", default="heart_disease")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--final-seeds", type=int, default=None, help="default: power-sized (the profile's)")
    parser.add_argument("--no-finals", action="store_true")
    parser.add_argument(
        "--lookahead",
        type=int,
        default=1,
        help="campaign.lookahead (0: each run decided after the last result)",
    )
    parser.add_argument(
        "--niceness",
        type=int,
        nargs="+",
        default=[RUN_NICENESS],
        help="runs' niceness over this process; several values: one campaign each, side by side",
    )
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    rows = [(niceness, campaign_speed(args, niceness)) for niceness in args.niceness]
    if len(rows) > 1:
        print("side by side (same campaign, runs' niceness varied):")
        for niceness, phases in rows:
            cells = "  ".join(f"{name} {wall:6.1f} s idle {idle:6.1%}" for name, wall, idle in phases)
            print(f"  niceness {niceness:>2}: {cells}")
        base = rows[0][1][0][1]
        for niceness, phases in rows[1:]:
            print(f"  search wall, niceness {niceness} / niceness {rows[0][0]}: {phases[0][1] / base:.2f}")


def campaign_speed(args: argparse.Namespace, niceness: int) -> list[tuple[str, float, float]]:
    """One campaign: prints its table, returns (phase, wall s, idle share) per phase; exit 1 on failures."""
    from omegaconf import OmegaConf

    conf = ROOT / "afr" / "conf"
    agent_cfg = OmegaConf.to_container(OmegaConf.load(conf / "agent" / "evolve.yaml"), resolve=True)
    control_cfg = OmegaConf.to_container(OmegaConf.load(conf / "control" / "optuna.yaml"), resolve=True)
    workers = args.workers
    with tempfile.TemporaryDirectory() as tmp:
        settings = CampaignSettings(
            name="speed",
            directory=Path(tmp) / "campaign",
            profile=args.profile,
            profile_cfg=load_profile_config(args.profile),
            agent_cfg=agent_cfg,
            control_cfg=control_cfg,
            runs_per_arm=args.runs_per_arm,
            data_dir=str(data_dir_from(args.data_dir)),
            runner=RunnerSettings(workers=workers, niceness=niceness),
            finals=not args.no_finals,
            final_seeds=args.final_seeds,
            lookahead=args.lookahead,
        )
        start = time.perf_counter()
        campaign = Campaign(settings, echo=lambda _line: None)
        setup = time.perf_counter() - start
        phases = Phases(campaign)
        phases.mark("search_start")
        # the search ends where the finals start (without finals: where the campaign ends)
        result = campaign.run()
        wall = time.perf_counter() - start
        ledger = Ledger.for_campaign_dir(settings.directory)
        runs = ledger.runs(result.campaign_id)
    search_runs = [r for r in runs if r.stage == "search"]
    final_runs = [r for r in runs if r.stage != "search"]
    print(
        f"{args.profile}: {args.runs_per_arm} + {args.runs_per_arm} runs (evolve vs optuna), "
        f"{workers} workers, lookahead {args.lookahead}, runs' niceness {niceness}, "
        f"load {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs"
    )
    print(f"  wall time (incl. {setup:.1f}s set-up and sandbox start) {wall:8.1f} s")
    for arm, status in result.arms.items():
        print(f"  {arm:<8} {status.runs:>3} runs  {status.runs / wall:6.3f} runs/s  best val {status.best}")
    phase_rows = []
    if not args.no_finals and "finals_end" in phases.marks:
        phase_rows.append(("search", phases.span("search_start", "finals_start"), search_runs, 0.0))
        phase_rows.append(
            ("finals", phases.span("finals_start", "finals_end"), final_runs, phases.evaluation_cpu)
        )
    else:
        w0, c0, _ = phases.marks["search_start"]
        phase_rows.append(("search", (wall - (w0 - start), time.process_time() - c0, 0.0), search_runs, 0.0))
    print(
        f"  {'phase':<7} {'runs':>5} {'wall s':>8} {'in runs s':>10} {'idle':>6} "
        f"{'parent CPU/run':>15} {'(eval/run)':>11} {'worker CPU/run':>15}"
    )
    worst_idle = worst_cpu = 0.0
    summary = []
    for name, (span_wall, span_cpu, span_children), phase_runs, eval_cpu in phase_rows:
        inside = sum(r.runtime_s or 0.0 for r in phase_runs)
        n = max(1, len(phase_runs))
        idle = max(0.0, 1 - inside / (workers * span_wall)) if span_wall > 0 else 0.0
        worst_idle, worst_cpu = max(worst_idle, idle), max(worst_cpu, span_cpu / n)
        summary.append((name, span_wall, idle))
        child = f"{span_children / n:14.2f}s" if span_children else f"{'n/a':>15}"
        print(
            f"  {name:<7} {len(phase_runs):>5} {span_wall:8.1f} {inside:10.1f} {idle:6.1%} "
            f"{span_cpu / n:14.3f}s {eval_cpu / n:10.3f}s {child}"
        )
    failed = [r for r in runs if r.status != "ok"]
    if result.failure or failed:
        # A campaign whose runs fail is fast for the wrong reason: no timing target is met by it.
        print(f"  FAILED: {len(failed)} of {len(runs)} runs failed; {result.failure or failed[0].message}")
        raise SystemExit(1)
    search_wall = phase_rows[0][1][0]
    print(f"  target: search phase < 300 s on 2 cores: {'met' if search_wall < 300 else 'NOT met'}")
    print(f"  target: worker idle <= 10 % in every phase: {'met' if worst_idle <= 0.10 else 'NOT met'}")
    print(f"  target: parent CPU <= 0.3 s per run in every phase: {'met' if worst_cpu <= 0.3 else 'NOT met'}")
    return summary


if __name__ == "__main__":
    main()
