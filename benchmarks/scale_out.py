"""How do runs scale out? Runs/s with 1 and 2 workers for each executor (the local sandbox pool and Ray), and
each executor's overhead per run, measured side by side in one run on the same synthetic jobs.

    .venv/bin/python benchmarks/scale_out.py [--runs 12] [--rounds 30] [--local-steps 50] [--repeats 3]
                                             [--two-nodes | --ray-address ADDR] [--json PATH]

Ray (``pip install -e '.[ray]'``): by default a local instance (``ray.init()``, what ``campaign.executor=ray``
with ``campaign.ray_address=null`` starts); ``--two-nodes`` makes it a two-node ``ray.cluster_utils.Cluster``
on this machine (1 CPU each: 2 workers means one run per node); ``--ray-address`` joins a running cluster.

Throughput: ``--runs`` jobs (FedAvg on ``synthetic``, seeds 0..runs-1) through ``map``, ``--repeats`` times
per executor, the executors interleaved (both pools warm, one warm-up job each); runs/s = runs / wall time,
median over the repeats. Overhead per run: the same jobs one at a time on the 1-worker pools (alternating),
the run's wall time as the caller saw it minus its training time in the sandboxed child: fork, profile
load, transfer of job and weights, and Ray's dispatch. Every executor must give the same validation
score for the same seed; a run that is not ``ok`` or a score that differs exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from afr.engine import RunResult
from afr.profiles import load_profile_config
from afr.sandbox import RayPool, RunJob, SandboxPool


def jobs(count: int, rounds: int, local_steps: int, tag: str) -> list[RunJob]:
    cfg = load_profile_config("synthetic")
    cfg.update(rounds=rounds, local_steps=local_steps)
    return [
        RunJob(
            f"{tag}-{seed}", "synthetic", cfg, recipe_name="fedavg", seed=seed, timeout_s=300, memory_mb=2048
        )
        for seed in range(count)
    ]


def measure(workers: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Both executors at ``workers``: both pools warm, then ``--repeats`` timed batches of each, interleaved
    (which goes first alternates), and at 1 worker the runs one at a time, alternating, for the overhead."""
    pools = {"local": SandboxPool(workers), "ray": RayPool(workers)}
    results: dict[str, list[RunResult]] = {name: [] for name in pools}
    rates: dict[str, list[float]] = {name: [] for name in pools}
    sequential: dict[str, list[RunResult]] = {name: [] for name in pools}
    try:
        for name, pool in pools.items():
            pool.warm()
            pool.run(
                jobs(1, args.rounds, args.local_steps, f"{name}-warmup")[0]
            )  # first-run costs: not counted
        for repeat in range(args.repeats):
            for name in sorted(pools, reverse=bool(repeat % 2)):
                batch = jobs(args.runs, args.rounds, args.local_steps, f"{name}-w{workers}-{repeat}")
                start = time.perf_counter()
                done = pools[name].map(batch)
                rates[name].append(len(done) / (time.perf_counter() - start))
                results[name].extend(done)
        if workers == 1:  # overhead: one run at a time, nothing queued
            for job in jobs(args.runs, args.rounds, args.local_steps, "seq"):
                for name, pool in pools.items():
                    sequential[name].append(pool.run(job))
    finally:
        for pool in pools.values():
            pool.close()
    rows = []
    for name in pools:
        row: dict[str, Any] = {
            "executor": name,
            "workers": workers,
            "runs": len(results[name]),
            "runs_per_s": statistics.median(rates[name]),
            "runs_per_s_all": rates[name],
            "train_s_median": statistics.median(r.seconds for r in results[name]),
            "failed": [
                f"{r.status}: {r.message}" for r in results[name] + sequential[name] if r.status != "ok"
            ],
            "val": [r.curve[-1].get("val") if r.curve else None for r in results[name][: args.runs]],
        }
        if sequential[name]:
            overhead = [r.wall_s - r.seconds for r in sequential[name]]
            row["overhead_ms_median"] = 1000 * statistics.median(overhead)
            row["overhead_ms_mean"] = 1000 * statistics.mean(overhead)
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=12, help="jobs per measurement (default 12)")
    parser.add_argument("--rounds", type=int, default=30, help="rounds per synthetic run (default 30)")
    parser.add_argument("--local-steps", type=int, default=50, help="local steps per round (default 50)")
    parser.add_argument("--repeats", type=int, default=3, help="timed batches per executor (default 3)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--two-nodes", action="store_true", help="Ray as a 2-node Cluster on this machine")
    where.add_argument("--ray-address", default=None, help="join this Ray cluster instead of a local one")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()
    if min(args.runs, args.rounds, args.local_steps, args.repeats) < 1:
        print("scale_out: --runs, --rounds, --local-steps and --repeats must be >= 1", file=sys.stderr)
        return 2
    try:
        import ray
    except ImportError:
        print("scale_out: Ray is not installed: pip install -e '.[ray]'", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.1f} at start: the numbers are noisier than on an idle machine")

    cluster = None
    if args.two_nodes:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        address = cluster.address
    else:
        address = args.ray_address
    options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        options["include_dashboard"] = False
    ray.init(address=address, **options)  # one Ray session for every Ray pool (RayPool joins it)
    rows = []
    try:
        for workers in (1, 2):
            rows.extend(measure(workers, args))
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()

    ray_kind = (
        "2-node Cluster" if args.two_nodes else ("cluster " + address if address else "local ray.init()")
    )
    print(
        f"\n{args.runs} synthetic FedAvg runs per row ({args.rounds} rounds x {args.local_steps} local "
        f"steps, training median {statistics.median(r['train_s_median'] for r in rows):.3f} s); "
        f"Ray: {ray_kind}\n"
    )
    print(
        "| executor | workers | runs/s (median of repeats) | each repeat | training s (median) "
        "| overhead per run (median, mean) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        overhead = (
            f"{row['overhead_ms_median']:.0f} ms, {row['overhead_ms_mean']:.0f} ms"
            if "overhead_ms_median" in row
            else ""
        )
        each = " ".join(f"{rate:.2f}" for rate in row["runs_per_s_all"])
        cells = [
            row["executor"],
            row["workers"],
            f"{row['runs_per_s']:.2f}",
            each,
            f"{row['train_s_median']:.3f}",
        ]
        cells.append(overhead)
        print("| " + " | ".join(map(str, cells)) + " |")
    for name in ("local", "ray"):
        one, two = (r for r in rows if r["executor"] == name)
        print(f"{name}: 2 workers give {two['runs_per_s'] / one['runs_per_s']:.2f}x the runs/s of 1")

    bad = [f"{r['executor']} x{r['workers']}: {f}" for r in rows for f in r["failed"]]
    reference = rows[0]["val"]
    differ = [f"{r['executor']} x{r['workers']}" for r in rows if r["val"] != reference]
    if args.json is not None:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "rows": rows}, indent=2)
        )
    if bad or differ:
        for line in bad:
            print(f"FAILED run: {line}")
        if differ:
            print(f"FAILED: other validation scores than local x1 for the same seeds: {', '.join(differ)}")
        return 1
    print("every run ok; every executor gave the same validation scores for the same seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
