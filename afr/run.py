"""Command line.

* ``python -m afr.run agent=<evolve|claude|openai|local> profile=<name>`` runs a campaign: the agent
  arm against the scalar-only control arm under one budget; the same command resumes.
* ``python -m afr.run profile=<name> recipe=<name> seeds=5`` trains one recipe on the profile's whole
  train split with each final seed and prints the test metric per seed and its mean ± std. The test
  split is evaluated here, on the returned weights, never inside the engine. ``recipe=<file.py>`` is
  validated and trains in the sandbox unless ``recipe.trusted=true``.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from .errors import AFRError, CampaignFailure, ConfigError, RunsFailed, StorageError, storage_error

__all__ = ["main", "train_and_test", "resolve_seeds", "profile_config", "config_groups", "resolve_data_dir"]


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


def profile_config(container: Any) -> dict[str, Any]:
    """The profile's config as composed (``budget=`` preset already merged in by Hydra's defaults list),
    checked against the chosen preset, with ``device=``/``baseline=`` applied.

    Hydra's defaults list merges ``budget_preset/<budget>/<profile>.yaml`` over the profile (optional:
    a profile without the preset gets nothing), so what ``--cfg job`` prints is what runs; the preset
    file records its name as ``budget_preset``, which tells here whether it was found.
    """
    from .profiles import BUDGET_DEFAULT, unknown_budget_preset

    profile_cfg = container.get("profile") if isinstance(container, dict) else None
    if not isinstance(profile_cfg, dict) or "name" not in profile_cfg:
        raise ConfigError("the profile config has no name", where="profile=", fix="pick a shipped profile")
    merged = dict(profile_cfg)
    preset = str(container.get("budget") or BUDGET_DEFAULT)
    if preset == BUDGET_DEFAULT:
        merged.setdefault("budget_preset", BUDGET_DEFAULT)
    elif merged.get("budget_preset") != preset:
        raise unknown_budget_preset(str(merged["name"]), preset, _search_path())
    if container.get("device") is not None:
        merged["device"] = container["device"]
    if container.get("baseline") is not None:
        merged["baseline"] = container["baseline"]
    if str(merged.get("baseline", "")).endswith(".py"):
        # A user's file: resolved once, here, against the directory the command was started from.
        merged["baseline"] = str(Path(merged["baseline"]).expanduser().resolve())
    return merged


def _search_path() -> list[str]:
    """The command line's ``hydra.searchpath`` entries (none outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().searchpath) if HydraConfig.initialized() else []


def resolve_data_dir(value: Any) -> str:
    """The data folder as an absolute path: ``data_dir=`` (relative to where the command was started),
    else ``$AFR_DATA_DIR``, else the user cache folder.

    Resolved once, here in the parent: sandboxed runs start in another directory, with another home and
    none of this environment, so they must be handed a path that means the same thing there.
    """
    from .data import default_data_dir

    folder = Path(str(value)).expanduser() if value not in (None, "") else default_data_dir()
    return str(folder.resolve())


def train_and_test(cfg: DictConfig, out_dir: Path | None = None) -> dict[str, Any]:
    """Run the configured recipe on the configured profile for every seed; return the results.

    A shipped recipe runs here. A ``.py`` file is untrusted by default: it is validated against the
    profile's recipe surface (as a campaign candidate would be) and every seed trains in the sandbox; only
    the returned weights are evaluated here, on the test split. ``recipe.trusted=true`` runs your own file
    in this process without validation or sandbox, and says so.
    """
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    # Before the profile: building it imports the engine and the data stack.
    _check_recipe_spec(str(cfg.recipe))
    from .profiles import make_profile

    profile_cfg = profile_config(container)
    profile = make_profile(
        str(profile_cfg["name"]), profile_cfg, data_dir=resolve_data_dir(cfg.get("data_dir"))
    )
    spec = str(cfg.recipe)
    trusted = _trusted(container.get("recipe_trusted", False))
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
    seeds = resolve_seeds(container.get("seeds"), profile.final_seeds)
    threads = cfg.get("threads", 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"threads must be a positive integer, got {threads!r}", where="threads=")

    label: dict[str, Any] = {}
    if spec.endswith(".py"):
        from .recipe import recipe_source

        source = recipe_source(str(Path(spec).expanduser().resolve()))  # read, never executed here
        label = {
            "recipe_file": source.label,
            "recipe_sha256": hashlib.sha256(source.text.encode("utf-8")).hexdigest(),
            "class_name": source.class_name,
            "trusted": trusted,
            "scalars": {**{k: v.default for k, v in profile.scalar_space(source).items()}, **scalars},
        }
        if trusted:
            print(
                f"trusted: {source.label} runs in this process without validation or sandbox "
                "(recipe.trusted=true; use it only for your own code)",
                flush=True,
            )
        else:
            _check_file(profile, source)
            print(
                f"untrusted: {source.label} passed the recipe surface; each seed trains in the sandbox",
                flush=True,
            )
            return _report(
                profile,
                spec,
                label,
                scalars,
                _sandboxed_rows(profile, source, scalars, seeds, container),
                out_dir,
            )
    elif trusted:
        raise ConfigError(
            "recipe.trusted=true is for a .py file of your own", where="recipe.trusted=", fix="drop it"
        )
    rows, names = _in_process_rows(profile, spec, scalars, seeds, threads, cfg, out_dir)
    return _report(profile, spec, {**names, **label}, scalars, rows, out_dir)


def _check_recipe_spec(spec: str) -> None:
    """An unknown recipe name or a missing file, said in one line before anything heavy is imported."""
    if spec.endswith(".py"):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"recipe file {str(path)!r} does not exist",
                where="recipe=",
                fix="give the path of a recipe .py file (relative to where you run the command)",
            )
        return
    from .recipe import RECIPES, recipe_class

    if spec not in RECIPES:
        recipe_class(spec)  # raises the registry's one-line error naming the shipped recipes


def _trusted(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ConfigError(f"recipe.trusted must be true or false, got {value!r}", where="recipe.trusted=")


def _trusted_override(argv: list[str]) -> list[str]:
    """``recipe.trusted=...`` on the command line becomes ``+recipe_trusted=...`` (``recipe`` is a string in
    the config, so Hydra cannot give it a key)."""
    return [
        "+recipe_trusted=" + item.split("=", 1)[1]
        if item.split("=", 1)[0].lstrip("+") == "recipe.trusted"
        else item
        for item in argv
    ]


def _check_file(profile: Any, source: Any) -> None:
    """Refuse a file the campaign's validator would reject (one line: the first violation)."""
    from .recipe import recipe_source
    from .surface import surface_table, validate

    table = surface_table(profile, baseline=recipe_source(profile.baseline))
    report = validate(source.text, table, filename=Path(source.label).name)
    if not report.ok:
        raise ConfigError(
            f"the recipe {source.label} breaks the recipe surface of profile {profile.name!r} "
            f"({report.in_brief()})",
            where="recipe=",
            fix="fix the file (`python -m afr.surface validate <file>` lists every violation), or, for "
            "your own code only, add recipe.trusted=true",
        )


def _sandboxed_rows(
    profile: Any, source: Any, scalars: dict[str, Any], seeds: list[int], container: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each seed trained in the sandbox from the file's text; the returned weights evaluated here."""
    from .profiles import import_root
    from .sandbox import RunJob, SandboxPool

    unknown = sorted(set(scalars) - set(profile.scalar_space(source)))
    if unknown:
        raise ConfigError(
            f"recipe {source.class_name} declares no scalar {', '.join(map(repr, unknown))}",
            where="scalars=",
            fix=f"choose among {', '.join(sorted(profile.scalar_space(source))) or 'none'}",
        )
    camp = container.get("campaign") or {}
    test = profile.data("test")
    rows = []
    pool = SandboxPool(1)
    try:
        for seed in seeds:
            job = RunJob(
                job_id=f"run/{source.class_name}/seed-{seed}",
                profile=profile.name,
                profile_cfg=dict(profile.cfg),
                data_dir=str(profile.data_dir) if profile.data_dir is not None else None,
                recipe_source=source.text,
                class_name=source.class_name,
                scalars={k: float(v) for k, v in scalars.items()},
                seed=seed,
                stage="final",
                timeout_s=float(camp.get("timeout_s", 600)),
                memory_mb=int(camp.get("memory_mb", 4096)),
                import_roots=tuple(filter(None, [import_root(type(profile))])),
            )
            result = pool.run(job)
            row: dict[str, Any] = {"seed": seed, "status": result.status, "seconds": result.seconds}
            if result.ok:
                try:
                    model = profile.build_model(result.model_variant)
                    model.load_state_dict(result.state_dict)
                    evaluation = profile.evaluate(model, test)
                except Exception as exc:  # noqa: BLE001 -- the file's weights, not this process, are at fault
                    row.update(
                        status="failed", message=f"weights not usable: {type(exc).__name__}: {exc}"[:500]
                    )
                else:
                    row.update(
                        test=evaluation.mean,
                        test_per_client=evaluation.per_client,
                        val_last_round=result.final_val,
                        steps=result.steps,
                    )
            else:
                row["message"] = result.message[:500]
            row.setdefault("test", math.nan)
            rows.append(row)
            _print_row(profile, row)
    finally:
        pool.close()
    return rows


def _in_process_rows(
    profile: Any,
    spec: str,
    scalars: dict[str, Any],
    seeds: list[int],
    threads: int,
    cfg: DictConfig,
    out_dir: Path | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A shipped recipe (or a trusted file) trained in this process, seed by seed."""
    from .engine import run_federation
    from .recipe import recipe_class

    recipe_cls = recipe_class(spec)
    recipe = profile.make_recipe(recipe_cls, scalars)
    test = profile.data("test")
    rows = []
    for seed in seeds:
        log_dir = out_dir / "tb" / f"seed_{seed}" if out_dir is not None and cfg.get("tensorboard") else None
        result = run_federation(profile, recipe, seed, stage="final", log_dir=log_dir, threads=threads)
        evaluation = profile.evaluate(result.build_model(profile), test)
        row = {
            "seed": seed,
            "status": "ok",
            "test": evaluation.mean,
            "test_per_client": evaluation.per_client,
            "val_last_round": result.final_val,
            "seconds": result.seconds,
            "steps": result.steps,
        }
        rows.append(row)
        _print_row(profile, row)
    return rows, {"class_name": recipe_cls.__name__, "scalars": recipe.scalar_values()}


def _print_row(profile: Any, row: dict[str, Any]) -> None:
    if row["status"] != "ok":
        print(f"seed {row['seed']:>4}  {row['status']}: {row.get('message', '')}", flush=True)
        return
    print(
        f"seed {row['seed']:>4}  test {profile.metric_name} {row['test']:.4f}  "
        f"(per client: {', '.join(f'{v:.3f}' for v in row['test_per_client'])})  {row['seconds']:.2f}s",
        flush=True,
    )


def _report(
    profile: Any,
    spec: str,
    label: dict[str, Any],
    scalars: dict[str, Any],
    rows: list[dict[str, Any]],
    out_dir: Path | None,
) -> dict[str, Any]:
    values = [r["test"] for r in rows if not math.isnan(r["test"])]
    mean = statistics.fmean(values) if values else math.nan
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    # A file is labelled with its own class (and content hash), never with the shipped base's name.
    name = label.get("class_name") if spec.endswith(".py") else spec
    summary = {
        "profile": profile.name,
        "recipe": name,
        **{k: v for k, v in label.items() if k != "scalars"},
        "scalars": label.get("scalars", dict(scalars)),
        "budget": vars(profile.budget),
        "metric": profile.metric_name,
        "seeds": rows,
        "mean": mean,
        "std": std,
    }
    shown = f"{profile.name} / {name}"
    if "recipe_sha256" in label:
        shown += f" (sha256 {label['recipe_sha256'][:12]})"
    print(
        f"{shown}: test {profile.metric_name} = {mean:.4f} ± {std:.4f} "
        f"over {len(values)}{'' if len(values) == len(rows) else f' of {len(rows)}'} seeds"
    )
    if out_dir is not None:
        (out_dir / "results.json").write_text(json.dumps(summary, indent=2))
    if not values:
        raise RunsFailed(
            f"no seed of {shown} gave a result ({len(rows)} run(s); the reasons are above)",
            where=str(out_dir) if out_dir is not None else None,
            fix="fix the cause the failed seeds name and run the command again",
        )
    return summary


def campaign_settings(cfg: DictConfig, *, agent_cfg: dict[str, Any] | None = None, name: str | None = None):
    """The campaign described by the config (``agent=`` set, or ``agent_cfg`` given, e.g. by ``afr evaluate``;
    ``name`` is the default campaign name then)."""
    from .campaign import DEFAULT_LOOKAHEAD, CampaignSettings, RunnerSettings
    from .evaluation import RacingSettings
    from .sandbox import check_num_gpus, check_ray_address, import_ray, parse_devices

    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    evaluating = agent_cfg is not None
    agent_cfg, control_cfg = agent_cfg or container.get("agent"), container.get("control") or {}
    profile_cfg = profile_config(container)
    camp = container.get("campaign") or {}
    if not isinstance(agent_cfg, dict) or "kind" not in agent_cfg:
        raise ConfigError(
            "the agent config has no kind", where="agent=", fix="agent=evolve|claude|openai|local"
        )
    profile_name = str(profile_cfg.get("name"))
    seed = camp.get("seed", 0)
    runs = camp.get("runs_per_arm") or profile_cfg.get("campaign_runs", 24)
    for key, value in (("campaign.seed", seed), ("campaign.runs_per_arm", runs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{key} must be a non-negative integer, got {value!r}", where=f"{key}=")
    agent_name = str(agent_cfg.get("name", agent_cfg["kind"]))
    name = camp.get("name") or name or f"{profile_name}-{agent_name}-seed{seed}"
    # Resolved here, against the folder the command was started from: the sandbox runs elsewhere.
    directory = Path(camp.get("dir") or Path("afr_campaigns") / name).expanduser().resolve()
    storage = camp.get("storage")
    if storage is not None:
        from .ledger import check_storage_url

        # Checked now, before any folder or record is made: a typo or a server out of reach is one line.
        storage = check_storage_url(str(storage), where="campaign.storage=")
    try:
        runner = RunnerSettings(
            workers=int(camp.get("workers", 2)),
            timeout_s=float(camp.get("timeout_s", 600)),
            memory_mb=int(camp.get("memory_mb", 4096)),
            devices=tuple(parse_devices(camp.get("devices"))),
            executor=str(camp.get("executor") or "local"),
            ray_address=None if camp.get("ray_address") is None else str(camp["ray_address"]),
            num_gpus=check_num_gpus(camp.get("num_gpus") or 0),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"malformed campaign resources: {exc}",
            where="campaign.workers/timeout_s/memory_mb/devices/executor/ray_address/num_gpus",
        ) from exc
    if runner.executor == "ray":
        import_ray()  # not installed, or no cluster at the address: one line now, before any folder is made
        check_ray_address(runner.ray_address)
    lookahead = _optional_count(camp.get("lookahead"), "campaign.lookahead", at_least=0)
    return CampaignSettings(
        name=str(name),
        directory=directory,
        profile=profile_name,
        profile_cfg=profile_cfg,
        agent_cfg=agent_cfg,
        control_cfg=control_cfg,
        runs_per_arm=runs,
        seed=seed,
        data_dir=resolve_data_dir(cfg.get("data_dir")),
        runner=runner,
        proposals_per_step=int(camp.get("proposals_per_step", 4)),
        max_repairs=int(camp.get("max_repairs", 2)),
        finals=bool(camp.get("finals", True)),
        top_k=int(camp.get("top_k", 3)),
        final_seeds=_optional_count(camp.get("final_seeds"), "campaign.final_seeds", at_least=2),
        heldout_seeds=_optional_count(camp.get("heldout_seeds"), "campaign.heldout_seeds", at_least=1),
        evaluation_cfg=dict(container.get("evaluation") or {}),
        storage=storage,
        lookahead=DEFAULT_LOOKAHEAD if lookahead is None else lookahead,  # null: the default
        racing=RacingSettings.from_config(camp.get("racing")),
        # More than two runs at once in a search: the extra ones are worker processes of a shared campaign
        # (``afr evaluate`` runs one given file: its extra workers only speed up the finals).
        shared=_flag(camp.get("shared", False), "campaign.shared") or (runner.workers > 2 and not evaluating),
        stale_after_s=_seconds(camp.get("stale_after_s", 60), "campaign.stale_after_s"),
        await_workers=_optional_count(camp.get("await_workers", 0), "campaign.await_workers", at_least=0)
        or 0,
    )


def _flag(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {value!r}", where=f"{key}=")
    return value


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigError(f"{key} must be a positive number of seconds, got {value!r}", where=f"{key}=")
    return float(value)


def _optional_count(value: Any, key: str, *, at_least: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        raise ConfigError(f"{key} must be an integer >= {at_least} or null, got {value!r}", where=f"{key}=")
    return value


def run_campaign(cfg: DictConfig) -> Any:
    """Run (or resume) the configured campaign and print where its records are."""
    import dataclasses

    from .campaign import Campaign, archive_failed_attempt, attempt_name, attempt_number

    settings = campaign_settings(cfg)
    archived = archive_failed_attempt(settings.directory, settings.name, storage=settings.storage)
    settings = dataclasses.replace(settings, attempt=attempt_number(settings.directory))
    if archived is not None:
        renamed = attempt_name(settings.name, int(archived.name))
        kept = f" (its files; in the database it is campaign {renamed!r})" if settings.storage else ""
        print(
            f"campaign {settings.name!r} failed last time: that attempt's records are kept in {archived}"
            f"{kept}; starting attempt {settings.attempt}",
            flush=True,
        )
    agent_name = settings.agent_cfg.get("name", settings.agent_cfg.get("kind"))
    print(
        f"campaign {settings.name!r}: agent {agent_name} vs control (optuna), "
        f"{settings.runs_per_arm} runs per arm on {settings.profile}; {settings.where()}",
        flush=True,
    )
    campaign = Campaign(settings)  # checks the inputs and runs the preflight
    result = campaign.run()
    print_summary(campaign, result)
    if result.failure:
        raise CampaignFailure(
            f"campaign {settings.name!r} failed: {result.failure}",
            where=str(settings.directory),
            fix="the runs' reasons are above and in the ledger; fix the cause, run the same command again: "
            f"attempt {settings.attempt + 1} starts, this attempt's records move to "
            f"{settings.directory / 'attempts' / str(settings.attempt)}"
            + (
                f" (in the database: renamed {attempt_name(settings.name, settings.attempt)!r})"
                if settings.storage
                else ""
            ),
        )
    return result


def print_summary(campaign: Any, result: Any) -> None:
    """Where a finished campaign's records are, and each arm's spend and best validation score (the campaign
    has already printed its closing summary: verdicts and the report's path)."""
    print(f"\nspend ({result.seconds:.1f}s in all):")
    for arm, status in result.arms.items():
        best = f"{status.best:.4f} (candidate {status.best_candidate})" if status.best is not None else "—"
        print(
            f"  {arm:<8} runs {status.runs:>3}  failed {status.failures:>3}  rejected {status.rejected:>3}  "
            f"duplicates {status.duplicates:>3}  best val {campaign.profile.metric_name} {best}"
        )
    url = campaign.runner.ledger.shown_url  # a password hidden: the console is no place for it
    print(f"  ledger: {url}\n  dashboard: optuna-dashboard {url}")
    print(f"  curves: tensorboard --logdir {result.directory / 'tb'}")


def config_groups(search_path: Any = ()) -> str:
    """The ``group: option, ...`` lines of ``--help``: the shipped config groups and those of the
    ``hydra.searchpath`` folders (resolver ``afr_config_groups`` of the help template in config.yaml)."""
    from .profiles import config_dirs

    options: dict[str, set[str]] = {}
    for folder in config_dirs([str(entry) for entry in search_path or ()]):
        groups = [g for g in folder.iterdir() if g.is_dir() and g.name != "hydra"] if folder.is_dir() else []
        for group in groups:
            names = {p.stem for p in group.glob("*.yaml") if p.is_file()}
            if names:
                options.setdefault(group.name, set()).update(names)
    return "\n".join(f"{group}: {', '.join(sorted(names))}" for group, names in sorted(options.items()))


OmegaConf.register_new_resolver("afr_config_groups", config_groups, replace=True)


def main() -> None:
    """Command-line entry point (reads ``sys.argv``): ``recipe.trusted=...`` is handed to Hydra as a key."""
    sys.argv = [sys.argv[0], *_trusted_override(sys.argv[1:])]
    _hydra_main()


def _drop_empty_output_dir() -> None:
    """Bad input leaves nothing behind: Hydra made the run's output dir before the input was checked; remove
    it when it holds only Hydra's own records (and the date folders above it when they are empty)."""
    import shutil

    try:
        out = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
    except ValueError:  # no Hydra run (called as a library)
        return

    def hydra_own(child: Path) -> bool:  # its config record, or its job log while still empty
        return child.name == ".hydra" or (child.suffix == ".log" and child.stat().st_size == 0)

    out = out.resolve()
    here = Path.cwd().resolve()
    if out == here or out in here.parents:  # hydra.run.dir=. (or above): the user's own folder, never ours
        return
    if out.is_dir() and all(hydra_own(child) for child in out.iterdir()):
        shutil.rmtree(out, ignore_errors=True)
        # Only the date folders of the default layout (afr_runs/<date>/<time>): a folder the user named in
        # hydra.run.dir, and whatever holds it, may have been there, empty, before this command.
        runs = here / "afr_runs"
        for parent in (out.parent, out.parent.parent):
            if (parent == runs or runs in parent.parents) and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()


def _say_where(out_dir: Path) -> None:
    """One line: where a single run's results went (nothing when it wrote none)."""
    results = out_dir.resolve() / "results.json"
    if not results.is_file():
        return
    curves = out_dir.resolve() / "tb"
    tail = f"; curves: tensorboard --logdir {curves}" if curves.is_dir() else ""
    print(f"results: {results} (set hydra.run.dir=... to choose the folder){tail}", flush=True)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    """Hydra entry point; user errors become one message and exit code 2."""
    try:
        if cfg.get("agent") is not None:
            run_campaign(cfg)
            _drop_empty_output_dir()  # a campaign's outputs live in its campaign.dir
        else:
            out_dir = Path(hydra.core.hydra_config.HydraConfig.get().runtime.output_dir)
            try:
                train_and_test(cfg, out_dir)
            finally:
                _say_where(out_dir)
    except Exception as raised:
        # Disk full, a read-only folder, a name too long: one line with its fix, wherever it surfaced.
        exc = raised if isinstance(raised, AFRError) else storage_error(raised)
        if exc is None:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        if not isinstance(exc, RunsFailed):
            _drop_empty_output_dir()
        # 2: bad input; 1: the runs were made (or tried) and failed, or the file system refused a write.
        sys.exit(1 if isinstance(exc, RunsFailed | StorageError) else 2)
    except KeyboardInterrupt:
        if cfg.get("agent") is not None:
            print("interrupted: nothing is lost; run the same command to resume", file=sys.stderr)
        else:  # a single run has no ledger to resume from: say so, and leave no empty run folder behind
            print("interrupted: the seeds printed above finished; single runs do not resume", file=sys.stderr)
            _drop_empty_output_dir()
        sys.exit(130)


if __name__ == "__main__":
    main()
