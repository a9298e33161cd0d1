"""How fast is a campaign? A 48 + 48 run campaign (evolve vs the Optuna control) on heart_disease, then its
finals (finalists of both arms and the baseline on the power-sized final seeds, test and held-out).

    .venv/bin/python benchmarks/campaign_speed.py [--runs-per-arm 48] [--workers 2] [--final-seeds N]
        [--no-finals] [--profile heart_disease] [--lookahead 2] [--niceness 0 5] [--repeats 1]
        [--data-dir DIR]

Prints, per phase of the campaign — *start* (the sandbox's start and the baseline's first run, which both
arms wait for: one run, so one worker idles by design), *search* (both arms' loops), *finals*, *report*
(findings, plots, no runs) — and for the whole campaign: wall time, runs, the workers' idle share (1 - sum of
run wall times in the workers, each from its fork to its result, / (workers x phase wall)), the machine's
CPU busy share (/proc/stat: what idle workers leave unused, or give to the parent) and the parent's CPU per
run outside training (everything this process does: proposing, validating, recording, saving weights,
evaluating finals on test and held-out data, Optuna); the workers' CPU per run (training plus the sandboxed
child's own start) is read from the zygote's reaped children. Targets: the search phase in < 5 min on 2
cores, worker idle <= 10 % in the search and the finals, parent CPU per run <= 0.3 s. ``--repeats N`` runs
the campaign N times and prints each and their mean. Exit 1 if any run failed.
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
import afr.campaign._loop as loop_module
from afr.campaign import DEFAULT_LOOKAHEAD, Campaign, CampaignSettings, RunnerSettings
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


def cpu_jiffies() -> tuple[int, int]:
    """(idle, total) jiffies of the whole machine since boot (/proc/stat)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    return values[3] + values[4], sum(values)  # idle + iowait


class Phases:
    """Marks where each phase of a campaign starts and ends: wall, this process's CPU, the workers' CPU
    (reaped children of the zygote) and the machine's CPU jiffies. Undone by :meth:`close`."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.marks: dict[str, tuple[float, float, float, tuple[int, int]]] = {}
        self.evaluation_cpu = 0.0
        self._undo: list[tuple[Any, str, Any]] = []
        run_finals, search, evaluate = campaign.run_finals, campaign._search, finals_module._evaluate
        report = loop_module.write_report

        def timed_search() -> str:
            self.mark("search_start")
            try:
                return search()
            finally:
                self.mark("search_end")

        def timed_finals() -> None:
            self.mark("finals_start")
            run_finals()
            self.mark("finals_end")

        def timed_report(*args: Any, **kwargs: Any) -> Any:
            self.mark("report_start")
            try:
                return report(*args, **kwargs)
            finally:
                self.mark("report_end")

        def timed_evaluate(*args: Any, **kwargs: Any) -> float:
            before = time.thread_time()  # this thread's CPU only: the workers' threads run meanwhile
            try:
                return evaluate(*args, **kwargs)
            finally:
                self.evaluation_cpu += time.thread_time() - before

        self._patch(campaign, "run_finals", timed_finals)
        self._patch(campaign, "_search", timed_search)
        self._patch(finals_module, "_evaluate", timed_evaluate)
        self._patch(loop_module, "write_report", timed_report)

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        self._undo.append((owner, name, getattr(owner, name)))
        setattr(owner, name, value)

    def close(self) -> None:
        for owner, name, value in reversed(self._undo):
            setattr(owner, name, value)

    def mark(self, name: str) -> None:
        pool = self.campaign.runner._pool
        zygote = pool.zygote_pid if pool is not None else None
        self.marks[name] = (time.perf_counter(), time.process_time(), children_cpu(zygote), cpu_jiffies())

    def span(self, start: str, end: str) -> tuple[float, float, float, float]:
        """(wall s, parent CPU s, workers' CPU s, machine busy share) between two marks."""
        (w0, c0, z0, (i0, t0)), (w1, c1, z1, (i1, t1)) = self.marks[start], self.marks[end]
        busy = 1 - (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0
        return w1 - w0, c1 - c0, z1 - z0, busy


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
        default=DEFAULT_LOOKAHEAD,
        help=f"campaign.lookahead (default {DEFAULT_LOOKAHEAD}; 0: each run decided after the last result)",
    )
    parser.add_argument(
        "--niceness",
        type=int,
        nargs="+",
        default=[RUN_NICENESS],
        help="runs' niceness over this process; several values: one campaign each, side by side",
    )
    parser.add_argument("--repeats", type=int, default=1, help="campaigns per setting; their mean is printed")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    rows = []
    for niceness in args.niceness:
        runs = [campaign_speed(args, niceness) for _ in range(max(1, args.repeats))]
        if len(runs) > 1:
            print(f"mean of {len(runs)} campaigns, runs' niceness {niceness}:")
            for i, (name, *_rest) in enumerate(runs[0]):
                wall = sum(r[i][1] for r in runs) / len(runs)
                idle = sum(r[i][2] for r in runs) / len(runs)
                busy = sum(r[i][3] for r in runs) / len(runs)
                print(f"  {name:<8} wall {wall:7.1f} s  worker idle {idle:6.1%}  CPU busy {busy:6.1%}")
        rows.append((niceness, runs[-1]))
    if len(rows) > 1:
        print("side by side (same campaign, runs' niceness varied):")
        for niceness, phases in rows:
            cells = "  ".join(f"{name} {wall:6.1f} s idle {idle:6.1%}" for name, wall, idle, _ in phases)
            print(f"  niceness {niceness:>2}: {cells}")
        base = next(p[1] for p in rows[0][1] if p[0] == "search")
        for niceness, phases in rows[1:]:
            search = next(p[1] for p in phases if p[0] == "search")
            print(f"  search wall, niceness {niceness} / niceness {rows[0][0]}: {search / base:.2f}")


def campaign_speed(args: argparse.Namespace, niceness: int) -> list[tuple[str, float, float, float]]:
    """One campaign: prints its table; returns (phase, wall s, worker idle, machine busy) per phase and for
    the whole campaign; exit 1 on failures."""
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
        try:
            phases.mark("start")
            result = campaign.run()
            phases.mark("end")
        finally:
            phases.close()
        wall = time.perf_counter() - start
        ledger = Ledger.for_campaign_dir(settings.directory)
        runs = sorted(ledger.runs(result.campaign_id), key=lambda r: r.id)
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
    marks = phases.marks
    # The baseline's first run (control trial 0) runs alone before both arms start: the start phase's run.
    phase_rows = [("start", phases.span("start", "search_start"), search_runs[:1], 0.0)]
    phase_rows.append(("search", phases.span("search_start", "search_end"), search_runs[1:], 0.0))
    if "finals_end" in marks:
        finals_span = phases.span("finals_start", "finals_end")
        phase_rows.append(("finals", finals_span, final_runs, phases.evaluation_cpu))
    phase_rows.append(("report", phases.span("report_start", "report_end"), [], 0.0))
    phase_rows.append(("campaign", phases.span("start", "end"), runs, phases.evaluation_cpu))
    print(
        f"  {'phase':<8} {'runs':>5} {'wall s':>8} {'in runs s':>10} {'idle':>6} {'CPU busy':>9} "
        f"{'parent CPU/run':>15} {'(eval/run)':>11} {'worker CPU/run':>15}"
    )
    worst_idle = worst_cpu = 0.0
    summary = []
    for name, (span_wall, span_cpu, span_children, busy), phase_runs, eval_cpu in phase_rows:
        inside = sum(r.runtime_s or 0.0 for r in phase_runs)
        n = max(1, len(phase_runs))
        idle = max(0.0, 1 - inside / (workers * span_wall)) if span_wall > 0 else 0.0
        if name in ("search", "finals"):  # the phases where both workers have runs to do
            worst_idle = max(worst_idle, idle)
        if phase_runs and name != "campaign":
            worst_cpu = max(worst_cpu, span_cpu / n)
        summary.append((name, span_wall, idle, busy))
        # (the zygote is gone by the campaign's end: its reaped children are read per phase only)
        known = span_children > 0 and phase_runs and name != "campaign"
        child = f"{span_children / n:14.3f}s" if known else f"{'n/a':>15}"
        per_run = f"{span_cpu / n:14.3f}s" if phase_runs else f"{span_cpu:13.2f}s*"
        print(
            f"  {name:<8} {len(phase_runs):>5} {span_wall:8.2f} {inside:10.2f} {idle:6.1%} {busy:9.1%} "
            f"{per_run} {eval_cpu / n:10.3f}s {child}"
        )
    print("  (* no runs: the phase's parent CPU in total)")
    failed = [r for r in runs if r.status != "ok"]
    if result.failure or failed:
        # A campaign whose runs fail is fast for the wrong reason: no timing target is met by it.
        print(f"  FAILED: {len(failed)} of {len(runs)} runs failed; {result.failure or failed[0].message}")
        raise SystemExit(1)
    search_wall = next(span[0] for name, span, *_ in phase_rows if name == "search")
    print(f"  target: search phase < 300 s on 2 cores: {'met' if search_wall < 300 else 'NOT met'}")
    print(
        f"  target: worker idle <= 10 % in the search and the finals: "
        f"{'met' if worst_idle <= 0.10 else 'NOT met'}"
    )
    print(f"  target: parent CPU <= 0.3 s per run in every phase: {'met' if worst_cpu <= 0.3 else 'NOT met'}")
    return summary


if __name__ == "__main__":
    main()
