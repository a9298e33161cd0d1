"""How much room is there above the tuned control? A centrally trained ceiling next to tuned FedAvg.

A mechanism can only be called better than the tuned control by the profile's margin if some model of the
task's family is that much better. For a profile with a small model this script measures the room:

* **ceiling** — the profile's default model trained *centrally* on the pooled ``fit`` split (no federation,
  full-batch L-BFGS to convergence), with an L2 penalty and a client weighting (rows pooled, or every client
  weighted equally as the metric averages them) chosen on validation from a grid; then retrained the same
  way on the whole ``train`` split (as final runs are) and scored on ``test`` — the test split the finals
  report (a FLamby profile's held-out center is not in it);
* **baseline** — FedAvg at the profile's defaults, final runs on the profile's final seeds;
* **tuned FedAvg** — FedAvg's declared scalars tuned by Optuna's TPE (``--trials``, default the profile's
  ``campaign_runs``, as many as a campaign's control gets), each trial scored by its mean validation over
  the search seeds (a stronger tuning than a campaign's one seed per trial), then final runs.

Printed per profile: validation and test of each, the room above tuned FedAvg (ceiling − tuned, on test)
and the profile's margin. The room is an estimate, not a bound (the ceiling is one model chosen on
validation; another may score higher on test by chance), but when it is below the margin a recipe that trains
one global model of this family has essentially nothing left to gain over tuned FedAvg that the verdict rules
could call a mechanism, whatever it does: a campaign's "no mechanism" there is about the task, not the search.

    .venv/bin/python benchmarks/headroom.py [synthetic heart_disease tcga_brca] [--trials N]
        [--final-seeds N] [--set key=value ...] [--data-dir DIR]

About a minute per profile on 2 cores. Exit 1 if a run fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence

import optuna
import torch
import yaml
from _common import data_dir_from  # benchmarks/ is on sys.path when run as a script

from afr.engine import run_federation
from afr.profiles import make_profile
from afr.profiles._base import ClientData, Profile
from afr.recipe import recipe_class

L2_GRID = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)
WEIGHTINGS = ("rows", "clients")


def _central_fit(
    profile: Profile, clients: Sequence[ClientData], l2: float, weighting: str
) -> torch.nn.Module:
    """The default model trained on ``clients`` pooled, full batch, L-BFGS until it stops improving."""
    torch.manual_seed(0)
    model = profile.build_model()
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.LBFGS(params, max_iter=500, tolerance_change=1e-12, line_search_fn="strong_wolfe")
    inputs = torch.cat([c.inputs for c in clients])
    targets = torch.cat([c.targets for c in clients])

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        if weighting == "rows":
            loss = profile.loss(model(inputs), targets)
        else:
            loss = torch.stack([profile.loss(model(c.inputs), c.targets) for c in clients]).mean()
        loss = loss + l2 * sum((p**2).sum() for p in params)
        loss.backward()
        return loss

    for _ in range(10):
        optimiser.step(closure)
    return model


def ceiling(profile: Profile) -> dict[str, float | str]:
    """Best validation over the grid (trained on ``fit``); that setting retrained on ``train``, scored on
    ``test``."""
    fit, val = profile.data("fit"), profile.data("val")
    scored = []
    for weighting in WEIGHTINGS:
        for l2 in L2_GRID:
            model = _central_fit(profile, fit, l2, weighting)
            scored.append((profile.evaluate(model, val).mean, l2, weighting))
    sign = 1.0 if profile.higher_is_better else -1.0
    best_val, l2, weighting = max(scored, key=lambda item: (sign * item[0], item[1:]))
    model = _central_fit(profile, profile.data("train"), l2, weighting)
    return {
        "val": best_val,
        "test": profile.evaluate(model, profile.data("test")).mean,
        "setting": f"L2 {l2:g}, {weighting} weighted",
    }


def _mean_val(profile: Profile, overrides: dict[str, float], seeds: Sequence[int]) -> float:
    recipe = profile.make_recipe(recipe_class("fedavg"), overrides)
    return statistics.mean(run_federation(profile, recipe, s).final_val for s in seeds)


def _mean_test(profile: Profile, overrides: dict[str, float], seeds: Sequence[int]) -> float:
    recipe = profile.make_recipe(recipe_class("fedavg"), overrides)
    scores = []
    for s in seeds:
        result = run_federation(profile, recipe, s, stage="final")
        scores.append(profile.evaluate(result.build_model(profile), profile.data("test")).mean)
    return statistics.mean(scores)


def tuned_fedavg(profile: Profile, trials: int) -> tuple[dict[str, float], float]:
    """FedAvg's declared scalars tuned by TPE on the mean validation over the search seeds."""
    space = profile.scalar_space(recipe_class("fedavg"))
    seeds = profile.search_seeds

    def objective(trial: optuna.Trial) -> float:
        overrides = {k: trial.suggest_float(k, s.low, s.high, log=s.log) for k, s in space.items()}
        return _mean_val(profile, overrides, seeds)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if profile.higher_is_better else "minimize"
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=trials)
    return dict(study.best_params), float(study.best_value)


def measure(name: str, trials: int | None, final_seeds: int, sets: dict[str, str], data_dir) -> dict:
    profile = make_profile(name, data_dir=data_dir)
    if sets:
        profile = profile.with_overrides(**sets)
    profile = profile.for_campaign()
    trials = trials or int(profile.cfg["campaign_runs"])
    search_seeds = profile.search_seeds
    finals = profile.final_seed_list(final_seeds)
    top = ceiling(profile)
    best, best_val = tuned_fedavg(profile, trials)
    return {
        "profile": name,
        "margin": profile.verdict.margin,
        "higher_is_better": profile.higher_is_better,
        "ceiling": top,
        "baseline": {"val": _mean_val(profile, {}, search_seeds), "test": _mean_test(profile, {}, finals)},
        "tuned": {"val": best_val, "test": _mean_test(profile, best, finals), "setting": best},
        "trials": trials,
        "final_seeds": len(finals),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="*", default=["synthetic", "heart_disease", "tcga_brca"])
    parser.add_argument("--trials", type=int, default=None, help="default: the profile's campaign_runs")
    parser.add_argument("--final-seeds", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a profile key")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    sets = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    data_dir = data_dir_from(args.data_dir)
    print(f"headroom above tuned FedAvg ({args.final_seeds} final seeds each)")
    print(
        "| profile | margin | baseline val / test | tuned FedAvg val / test | ceiling val / test"
        " | room (test) |"
    )
    print("|---|---:|---|---|---|---:|")
    notes = []
    for name in args.profiles:
        r = measure(name, args.trials, args.final_seeds, sets, data_dir)
        # In the metric's better direction, as the margin is.
        room = (r["ceiling"]["test"] - r["tuned"]["test"]) * (1 if r["higher_is_better"] else -1)
        print(
            f"| {name} | {r['margin']:g} | {r['baseline']['val']:.4f} / {r['baseline']['test']:.4f} "
            f"| {r['tuned']['val']:.4f} / {r['tuned']['test']:.4f} "
            f"| {r['ceiling']['val']:.4f} / {r['ceiling']['test']:.4f} "
            f"| {room:+.4f} ({'below' if room < r['margin'] else 'above'} the margin) |",
            flush=True,
        )
        tuned = ", ".join(f"{k} {v:.3g}" for k, v in r["tuned"]["setting"].items())
        notes.append(f"{name}: tuned FedAvg {tuned} ({r['trials']} TPE trials); {r['ceiling']['setting']}")
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
