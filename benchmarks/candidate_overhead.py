"""What does enforcement cost? Validator milliseconds per candidate, the engine's parameter-integrity checks
(seal verified after every hook, private copies, read-only model view) on vs off, and the per-run overhead
of the sandbox + ledger + accountant over bare in-process training, each measured side by side in one run.

    .venv/bin/python benchmarks/candidate_overhead.py [--runs 10] [--data-dir DIR]

Targets: validator <= 20 ms per candidate; integrity checks <= 10 % of a tcga_brca run; sandbox + ledger
overhead <= 0.3 s per run (warm pool). Any run that does not finish ``ok`` stops the script (exit 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from _common import data_dir_from  # benchmarks/ is on sys.path when run as a script

from afr.budget import ArmBudget
from afr.campaign import CandidateRunner, RunnerSettings
from afr.engine import _integrity, _loop, run_federation
from afr.errors import TrainingFailure
from afr.profiles import make_profile
from afr.recipe import recipe_class, recipe_source
from afr.surface import surface_table, validate

ROOT = Path(__file__).resolve().parents[1]
CANDIDATE = '''
from afr.recipe import FedAvg, scalar, weighted_mean_delta
import torch


class ServerMomentum(FedAvg):
    """FedAvg with server momentum and a proximal term."""

    beta = scalar(0.5, 0.0, 0.99)
    mu = scalar(0.01, 1e-4, 1.0, log=True)

    def local_objective(self, task_loss, model, ctx):
        prox = sum(((p - ctx.global_params[n]) ** 2).sum() for n, p in model.named_parameters())
        return task_loss + self.mu / 2 * prox

    def aggregate(self, global_params, updates, server_state):
        delta = weighted_mean_delta(updates)
        velocity = server_state.setdefault("v", {k: torch.zeros_like(v) for k, v in delta.items()})
        for k in velocity:
            velocity[k] = self.beta * velocity[k] + delta[k]
        return {k: global_params[k] + self.server_lr * velocity[k] for k in global_params}
'''


def validator_ms(repeats: int) -> dict[str, float]:
    table = surface_table("tcga_brca")
    files = {
        "candidate (server momentum + prox)": (CANDIDATE, None),
        "afr/recipe/fedopt.py": ((ROOT / "afr/recipe/fedopt.py").read_text(), "afr.recipe"),
        "afr/recipe/scaffold.py": ((ROOT / "afr/recipe/scaffold.py").read_text(), "afr.recipe"),
    }
    out = {}
    for name, (source, package) in files.items():
        assert validate(source, table, package=package).ok, name
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            validate(source, table, package=package)
            times.append((time.perf_counter() - start) * 1000)
        out[name] = statistics.median(times)
    return out


RECIPES = ("fedavg", "scaffold")
"""Scaffold too: it sends extras both ways and reads the model each step, through every copy and check."""


@contextmanager
def timing_checks() -> Iterator[list[float]]:
    """Wrap the engine's integrity routines (seal, private copies, read-only comparisons) with a timer:
    the CPU seconds spent inside them, accumulated in the yielded one-element list (the timer's own calls
    count as checks: an overestimate)."""
    spent = [0.0]

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[0] += time.thread_time() - start

        return wrapper

    targets = [
        (_integrity.ParamSeal, "verify"),
        (_integrity.ParamSeal, "refresh_params"),
        (_integrity.ParamSeal, "refresh_buffers"),
        (_loop, "private_copies"),
        (_loop, "changed_entries"),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name in targets]
    for owner, name, fn in saved:
        setattr(owner, name, timed(fn))
    try:
        yield spent
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def integrity_overhead(data_dir: Path, runs: int) -> dict[str, dict[str, list[float]]]:
    """Per tcga_brca run: CPU seconds of the training thread (``threads=1``: forward, backward and the checks
    all run on it; waiting for a core under load is not counted) with the integrity checks on and off,
    interleaved (the order alternates; each pair must train the same weights), and, in a third run per
    seed, the share of the run's CPU time spent inside the checks."""
    profile = make_profile("tcga_brca", data_dir=data_dir)
    out = {}
    for name in RECIPES:
        recipe = profile.make_recipe(recipe_class(name))
        run_federation(profile, recipe, 0)  # warm-up
        times: dict[str, list[float]] = {"on": [], "off": [], "share": []}
        for seed in range(runs):
            weights = []
            for integrity in (True, False) if seed % 2 else (False, True):
                start = time.thread_time()
                result = run_federation(profile, recipe, seed, validate_every=1, integrity=integrity)
                times["on" if integrity else "off"].append(time.thread_time() - start)
                weights.append(result.state_dict)
            if not all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]):
                raise SystemExit(f"{name} seed {seed}: the integrity checks changed the trained weights")
            with timing_checks() as spent:
                start = time.thread_time()
                run_federation(profile, recipe, seed, validate_every=1)
                times["share"].append(spent[0] / (time.thread_time() - start))
        out[name] = times
    return out


def run_overhead(data_dir: Path, runs: int) -> tuple[list[float], list[float], list[float]]:
    profile = make_profile("tcga_brca", data_dir=data_dir)
    recipe = profile.make_recipe(recipe_class("fedavg"))
    run_federation(profile, recipe, 0)  # warm-up
    bare = []
    for seed in range(runs):
        start = time.perf_counter()
        run_federation(profile, recipe, seed, validate_every=1)
        bare.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        runner = CandidateRunner(
            tmp,
            name="overhead",
            profile=make_profile("tcga_brca", data_dir=data_dir),
            agent="benchmark",
            limits={
                "agent": ArmBudget(runs + 1, 10**9),
                "control": ArmBudget(0, 0),
                "finals": ArmBudget(0, 0),
            },
            settings=RunnerSettings(workers=1),
        )
        with runner:
            runner.pool.warm()
            candidate = runner.propose(
                "agent", "benchmark", recipe=recipe_source("fedavg"), proposal_key="fedavg"
            )
            runner.run(candidate, seed=10_000)  # warm-up: the zygote caches the profile's data
            sandboxed, inside = [], []
            for seed in range(runs):
                start = time.perf_counter()
                record = runner.run(candidate, seed=seed)
                sandboxed.append(time.perf_counter() - start)
                if record is None or record.status != "ok":
                    raise SystemExit(f"a sandboxed FedAvg run did not finish ok: {record}")
                inside.append(record.runtime_s or 0.0)
    return bare, sandboxed, inside


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50, help="validator repeats per file")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f} at start; timings are only meaningful on an idle machine")

    print("validator: median ms per candidate (libcst parse + every rule), table tcga_brca")
    ms = validator_ms(args.repeats)
    for name, value in ms.items():
        print(f"  {name:<38} {value:7.2f} ms")
    worst = max(ms.values())
    print(f"  target <= 20 ms: {'met' if worst <= 20 else 'NOT met'} (worst {worst:.2f} ms)\n")

    data_dir = data_dir_from(args.data_dir)
    try:
        integrity = integrity_overhead(data_dir, args.runs)
    except TrainingFailure as exc:
        raise SystemExit(f"a run failed: {exc.message}") from None
    print(f"tcga_brca, {args.runs} runs each: integrity checks on vs off (interleaved), CPU seconds per run")
    cost = 0.0
    for name, times in integrity.items():
        on, off, share = times["on"], times["off"], statistics.median(times["share"])
        median_ratio = statistics.median(on) / statistics.median(off)
        min_ratio = min(on) / min(off)
        cost = max(cost, median_ratio - 1, share)
        print(
            f"  {name:<9} median on {statistics.median(on):6.3f} off {statistics.median(off):6.3f} "
            f"ratio {median_ratio:5.3f} | fastest on {min(on):6.3f} off {min(off):6.3f} "
            f"ratio {min_ratio:5.3f} | inside the checks {share:6.2%}"
        )
    print(
        f"  target cost <= 10 % (median ratio and CPU share inside the checks): "
        f"{'met' if cost <= 0.10 else 'NOT met'} (worst {cost:+.2%})\n"
    )

    bare, sandboxed, inside = run_overhead(data_dir, args.runs)
    b, s = statistics.median(bare), statistics.median(sandboxed)
    print(f"tcga_brca FedAvg, {args.runs} runs, median seconds per run (validation every round in both)")
    print(f"  bare run_federation in-process          {b:7.3f} s")
    wall = statistics.median(inside)
    print(f"  CandidateRunner.run (sandbox + ledger)  {s:7.3f} s   (pool wall time {wall:.3f} s)")
    print(f"  overhead per run                        {s - b:7.3f} s")
    print(f"  target <= 0.3 s with the warm pool: {'met' if s - b <= 0.3 else 'NOT met'}")


if __name__ == "__main__":
    main()
