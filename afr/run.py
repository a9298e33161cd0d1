"""Command line: ``python -m afr.run profile=<name> recipe=<name> seeds=5``.

Trains the recipe on the profile's whole train split with each final seed and prints the test
metric per seed and its mean ± std. The test split is evaluated here, on the returned weights,
never inside the engine.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from .errors import AFRError, ConfigError

__all__ = ["main", "train_and_test", "resolve_seeds"]


def resolve_seeds(spec: Any, final_seeds: list[int]) -> list[int]:
    """``5`` -> the first five of the profile's final seeds (continued by +1 past the list); a list as is."""
    if isinstance(spec, bool):
        spec = str(spec)
    if isinstance(spec, int):
        if spec < 1:
            raise ConfigError(f"seeds must be >= 1, got {spec}", where="seeds=", fix="e.g. seeds=5")
        seeds = list(final_seeds[:spec])
        while len(seeds) < spec:
            seeds.append(seeds[-1] + 1)
        return seeds
    if (
        isinstance(spec, list | tuple)
        and spec
        and all(isinstance(s, int) and not isinstance(s, bool) for s in spec)
    ):
        return [int(s) for s in spec]
    raise ConfigError(
        f"seeds must be a positive integer or a list of integers, got {spec!r}",
        where="seeds=",
        fix="e.g. seeds=5 or seeds=[42,43]",
    )


def train_and_test(cfg: DictConfig, out_dir: Path | None = None) -> dict[str, Any]:
    """Run the configured recipe on the configured profile for every seed; return the results."""
    from .engine import run_federation
    from .profiles import make_profile
    from .recipe import recipe_class

    profile_cfg = OmegaConf.to_container(cfg.profile, resolve=True)
    if not isinstance(profile_cfg, dict) or "name" not in profile_cfg:
        raise ConfigError("the profile config has no name", where="profile=", fix="pick a shipped profile")
    profile = make_profile(str(profile_cfg["name"]), profile_cfg, data_dir=cfg.get("data_dir"))
    recipe_cls = recipe_class(str(cfg.recipe))
    scalars_cfg = cfg.get("scalars")
    scalars = (
        OmegaConf.to_container(scalars_cfg, resolve=True)
        if isinstance(scalars_cfg, DictConfig)
        else scalars_cfg
    )
    if scalars is None:
        scalars = {}
    if not isinstance(scalars, dict):
        raise ConfigError(
            f"scalars must be a mapping, got {scalars!r}", where="scalars=", fix="+scalars.lr=0.05"
        )
    recipe = profile.make_recipe(recipe_cls, scalars)
    seeds = resolve_seeds(OmegaConf.to_container(cfg, resolve=True).get("seeds"), profile.final_seeds)
    threads = cfg.get("threads", 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}", where="threads=")

    test = profile.data("test")
    rows = []
    for seed in seeds:
        log_dir = out_dir / "tb" / f"seed_{seed}" if out_dir is not None and cfg.get("tensorboard") else None
        result = run_federation(profile, recipe, seed, stage="final", log_dir=log_dir, threads=threads)
        evaluation = profile.evaluate(result.build_model(profile), test)
        rows.append(
            {
                "seed": seed,
                "test": evaluation.mean,
                "test_per_client": evaluation.per_client,
                "val_last_round": result.final_val,
                "seconds": result.seconds,
                "steps": result.steps,
            }
        )
        print(
            f"seed {seed:>4}  test {profile.metric_name} {evaluation.mean:.4f}  "
            f"(per client: {', '.join(f'{v:.3f}' for v in evaluation.per_client)})  {result.seconds:.2f}s",
            flush=True,
        )
    values = [r["test"] for r in rows if not math.isnan(r["test"])]
    mean = statistics.fmean(values) if values else math.nan
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    summary = {
        "profile": profile.name,
        "recipe": recipe_cls.name,
        "scalars": recipe.scalar_values(),
        "budget": vars(profile.budget),
        "metric": profile.metric_name,
        "seeds": rows,
        "mean": mean,
        "std": std,
    }
    name = f"{profile.name} / {recipe_cls.name}"
    print(f"{name}: test {profile.metric_name} = {mean:.4f} ± {std:.4f} over {len(rows)} seeds")
    if out_dir is not None:
        (out_dir / "results.json").write_text(json.dumps(summary, indent=2))
    return summary


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    """Hydra entry point; user errors become one message and exit code 2."""
    try:
        out_dir = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
        train_and_test(cfg, out_dir)
    except AFRError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
