"""The ``afr`` command line, thin wrappers over the modules (imported only by the command that needs them):

* ``afr run key=value...``: a campaign (``agent=...``) or a single recipe run, as ``python -m afr.run``;
* ``afr evaluate key=value...``: one recipe through the protocol, as ``python -m afr.evaluate``;
* ``afr report <campaign dir>``: the campaign's report, as ``python -m afr.report``;
* ``afr table <campaign dirs…>``: the survival table across campaigns, as ``python -m afr.report table``;
* ``afr validate <recipe.py> [profile=<name>] [baseline=<recipe>]``: the validator's violations (exit 1
  if any);
* ``afr data fetch|verify|path <profile> [--searchpath DIR]``: a profile's data;
* ``afr export flower <campaign dir or URL> <candidate> --out DIR``: a candidate as a Flower federation;
* ``afr worker <URL> <campaign>``: one more worker searching a shared campaign (``campaign.shared=true``).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from afr.errors import AFRError

if TYPE_CHECKING:
    from afr.data import DataSource

__all__ = ["build_parser", "main"]


def _source(args: argparse.Namespace) -> DataSource:
    """The data source of the named profile, found through its YAML (unknown name: ``ConfigError``)."""
    from afr.profiles import profile_class

    return profile_class(args.profile, args.searchpath).source


def _data_fetch(args: argparse.Namespace) -> int:
    from afr.data import fetch, profile_dir

    source = _source(args)
    paths = fetch(args.profile, source, args.data_dir, mirror=args.mirror, progress=not args.no_progress)
    print(f"{args.profile}: {len(paths)} file(s) ready in {profile_dir(args.profile, args.data_dir)}")
    return 0


def _data_verify(args: argparse.Namespace) -> int:
    from afr.data import profile_dir, verify

    folder = profile_dir(args.profile, args.data_dir)
    results = verify(args.profile, _source(args), args.data_dir)
    for name, ok in results.items():
        status = "ok" if ok else ("BAD md5" if (folder / name).is_file() else "missing")
        print(f"{status:8} {folder / name}")
    if all(results.values()):
        return 0
    cmd = f"afr data fetch {args.profile}" + (f" --data-dir {args.data_dir}" if args.data_dir else "")
    print(f"fix: run `{cmd}` to (re)download the files not ok", file=sys.stderr)
    return 1


def _data_path(args: argparse.Namespace) -> int:
    from afr.data import profile_dir

    _source(args)  # unknown profile -> ConfigError listing the known ones
    print(profile_dir(args.profile, args.data_dir))
    return 0


def _table(args: argparse.Namespace) -> int:
    from afr.evaluation import table_command

    return table_command(args.args, prog="afr table")


def _validate(args: argparse.Namespace) -> int:
    """Validate a recipe file against the recipe surface of one profile (``profile=``) or of every shipped
    one; print each violation; 1 if any."""
    from pathlib import Path

    from afr.errors import ConfigError

    path = Path(args.file).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"recipe file {str(path)!r} does not exist",
            where="afr validate",
            fix="give the path of a .py file",
        )
    options: dict[str, str] = {}
    for item in args.options:
        key, sep, value = item.partition("=")
        if not sep or key not in ("profile", "baseline") or not value:
            raise ConfigError(
                f"unknown option {item!r}",
                where="afr validate",
                fix="use profile=<name> and/or baseline=<recipe>",
            )
        options[key] = value
    source = path.read_text(encoding="utf-8")

    from afr.profiles import make_profile, profile_names
    from afr.recipe import recipe_source
    from afr.surface import surface_table, validate

    names = [options["profile"]] if "profile" in options else profile_names()
    failed = False
    for name in names:
        profile = make_profile(name)  # an unknown name: ConfigError naming the shipped ones
        baseline = options.get("baseline") or profile.baseline
        if baseline.endswith(".py"):
            baseline = str(Path(baseline).expanduser().resolve())
        table = surface_table(profile, baseline=recipe_source(baseline))
        report = validate(source, table, filename=str(path))
        failed = failed or not report.ok
        print(f"[{name}] {report.filename}: accepted" if report.ok else f"[{name}] {report.in_brief()}")
        for violation in report.violations:
            print(f"  {violation}")
    return 1 if failed else 0


CANDIDATE_NAME = re.compile(r"^(agent|control|baseline)#[0-9]+$")
"""A candidate's one name (``afr/ledger/_names.py``), checked before the ledger is opened."""


def _export_flower(args: argparse.Namespace) -> int:
    """Write the Flower export of one candidate (``afr.export``); a bad name or path fails before imports."""
    from pathlib import Path

    from afr._url import is_database_url
    from afr.errors import ConfigError

    if not CANDIDATE_NAME.match(args.candidate):
        raise ConfigError(
            f"{args.candidate!r} is not a candidate name",
            where="afr export flower",
            fix="give a name as the report shows it: agent#30, control#12 or baseline#1 (quote the #)",
        )
    if not is_database_url(args.campaign) and not (Path(args.campaign).expanduser() / "ledger.db").is_file():
        raise ConfigError(
            f"no ledger.db in {args.campaign}",
            where="afr export flower",
            fix="give the directory of a campaign, or its database URL (with --campaign NAME)",
        )
    out = Path(args.out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"{out} already exists and is not an empty folder", where="--out", fix="give a new folder"
        )
    from afr.export import export_flower

    folder = export_flower(
        args.campaign, args.candidate, out, campaign=args.campaign_name, seed=args.seed, stage=args.stage
    )
    print(f"{args.candidate}: Flower export in {folder} (run: cd {folder} && python run_simulation.py)")
    return 0


def _worker(args: argparse.Namespace) -> int:
    """Join a shared campaign as one more worker (``afr.campaign``): search until its budget is spent."""
    from pathlib import Path

    from afr._url import is_database_url
    from afr.errors import ConfigError

    if not is_database_url(args.url):
        raise ConfigError(
            f"{args.url!r} is not a database URL",
            where="afr worker",
            fix="give the campaign's campaign.storage URL, e.g. postgresql+psycopg://user@host/db",
        )
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}", where="afr worker")
    from afr.campaign import Campaign, join_settings

    directory = Path(args.dir or Path("afr_campaigns") / f"{args.campaign}-worker").expanduser().resolve()
    # Resolved here, against the folder the command was started from (None: $AFR_DATA_DIR or the default)
    data_dir = str(Path(args.data_dir).expanduser().resolve()) if args.data_dir else None
    try:
        settings = join_settings(
            args.url,
            args.campaign,
            directory=directory,
            data_dir=data_dir,
            workers=args.workers,
            executor=args.executor,
            ray_address=args.ray_address,
            num_gpus=args.num_gpus,
        )
    except ValueError as exc:  # the runner's checks (e.g. --num-gpus without --executor ray)
        raise ConfigError(str(exc), where="afr worker") from None
    try:
        campaign = Campaign(settings)
        print(
            f"worker {campaign.worker} joins campaign {args.campaign!r} (artifacts in {directory})",
            flush=True,
        )
        result = campaign.run()
    except KeyboardInterrupt:
        print("interrupted: this worker's runs in flight are taken over by the others", file=sys.stderr)
        return 130
    runs = ", ".join(f"{arm} {status.runs}" for arm, status in result.arms.items())
    print(f"worker {campaign.worker} done: the campaign's search runs so far: {runs}", flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``afr`` argument parser (sub-commands set ``func``)."""
    parser = argparse.ArgumentParser(
        prog="afr",
        description="Auto-FL-Research command line (each command is a thin wrapper over a module).",
        epilog="afr run agent=evolve profile=heart_disease is python -m afr.run agent=evolve "
        "profile=heart_disease; afr run --help lists the config groups and keys.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    # Hydra applications and `report` parse their own command line: main() hands them every word before
    # this parser sees it; they are declared here for `afr --help`.
    for name, what in (
        ("run", "a campaign (agent=...) or a single recipe run (recipe=...): python -m afr.run key=value..."),
        ("evaluate", "one recipe through the protocol: python -m afr.evaluate key=value..."),
        ("report", "write a campaign's report: python -m afr.report <campaign dir>"),
    ):
        p = commands.add_parser(name, add_help=False, help=what)
        p.add_argument("args", nargs=argparse.REMAINDER)

    p = commands.add_parser(
        "validate", help="validate a recipe file against the recipe surface (exit 1 on any violation)"
    )
    p.add_argument("file", help="the recipe .py file")
    p.add_argument(
        "options",
        nargs="*",
        metavar="key=value",
        help="profile=<name> (default: every shipped profile), baseline=<recipe or file.py> (default: the "
        "profile's)",
    )
    p.set_defaults(func=_validate)

    data = commands.add_parser("data", help="download, check and locate the data of a profile")
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    data_dir_help = "data folder (default: $AFR_DATA_DIR, else the user cache folder)"
    searchpath_help = (
        "a config folder with more profiles (<DIR>/profile/<name>.yaml, as for hydra.searchpath); repeatable"
    )

    p = actions.add_parser("fetch", help="download the missing or corrupted files of a profile")
    p.add_argument("profile")
    p.add_argument("--data-dir", help=data_dir_help)
    p.add_argument("--searchpath", action="append", default=[], metavar="DIR", help=searchpath_help)
    p.add_argument("--mirror", help="base URL (or local folder) laid out as <mirror>/<profile>/<file>")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_data_fetch)

    p = actions.add_parser("verify", help="md5-check the files of a profile (exit 1 if any is not ok)")
    p.add_argument("profile")
    p.add_argument("--data-dir", help=data_dir_help)
    p.add_argument("--searchpath", action="append", default=[], metavar="DIR", help=searchpath_help)
    p.set_defaults(func=_data_verify)

    p = actions.add_parser("path", help="print the folder holding the files of a profile")
    p.add_argument("profile")
    p.add_argument("--data-dir", help=data_dir_help)
    p.add_argument("--searchpath", action="append", default=[], metavar="DIR", help=searchpath_help)
    p.set_defaults(func=_data_path)

    export = commands.add_parser("export", help="a campaign's candidate as code for another FL framework")
    targets = export.add_subparsers(dest="target", metavar="TARGET", required=True)
    p = targets.add_parser(
        "flower",
        help="a Flower (flwr) Strategy + client running the candidate's recipe, with a simulation script",
    )
    p.add_argument("campaign", help="the campaign directory, or the database URL of its campaign.storage=")
    p.add_argument("candidate", help="the candidate's name as the report shows it: agent#30, control#12, ...")
    p.add_argument("--out", required=True, metavar="DIR", help="the folder to write (new or empty)")
    p.add_argument(
        "--campaign", dest="campaign_name", metavar="NAME", help="the campaign's name in a database"
    )
    p.add_argument(
        "--seed", type=int, help="the simulation's default seed (default: the profile's first final seed)"
    )
    p.add_argument(
        "--stage",
        choices=("final", "search"),
        default="final",
        help="train on the whole train split (final, as afr run) or on train minus validation (search)",
    )
    p.set_defaults(func=_export_flower)

    p = commands.add_parser("worker", help="join a shared campaign (campaign.shared=true) as one more worker")
    p.add_argument("url", help="the campaign's database URL (its campaign.storage=)")
    p.add_argument("campaign", help="the campaign's name (its campaign.name=)")
    p.add_argument("--dir", help="this worker's folder for artifacts (default: afr_campaigns/<name>-worker)")
    p.add_argument(
        "--data-dir", dest="data_dir", help="the data folder on this machine (default: as afr run)"
    )
    p.add_argument("--workers", type=int, default=2, help="sandboxed runs at once (one per arm: 2)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="where the runs execute")
    p.add_argument("--ray-address", dest="ray_address", help="executor ray: the cluster (default: local Ray)")
    p.add_argument("--num-gpus", dest="num_gpus", type=float, default=0.0, help="executor ray: GPUs per run")
    p.set_defaults(func=_worker)

    # The table's own parser (afr.evaluation's table_command) reads every word after `table`: its import
    # is too slow for every `afr` command, so main() hands the words over before this parser sees them.
    p = commands.add_parser(
        "table", add_help=False, help="the survival table across campaigns (afr table --help for its options)"
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_table)
    return parser


HYDRA_COMMANDS = {"run": "afr.run", "evaluate": "afr.evaluate"}
"""Subcommands that are Hydra applications: ``afr <name> key=value...`` runs ``python -m <module> ...``."""


def _hydra_command(module_name: str, prog: str, argv: Sequence[str]) -> int:
    """Run a Hydra application's ``main`` with ``argv`` as its command line; return its exit code."""
    import importlib

    module = importlib.import_module(module_name)
    saved = sys.argv
    sys.argv = [prog, *argv]
    try:
        module.main()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``afr`` command; return its exit code (2 on a user-facing error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in HYDRA_COMMANDS:
        return _hydra_command(HYDRA_COMMANDS[argv[0]], f"afr {argv[0]}", argv[1:])
    if argv[:1] == ["table"]:  # options first (`afr table --csv t.csv DIR`) would trip REMAINDER
        return _table(argparse.Namespace(args=argv[1:]))
    if argv[:1] == ["report"]:
        import importlib

        return int(importlib.import_module("afr.report").main(argv[1:], prog="afr report"))
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help / bad usage; hand the code back instead
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except AFRError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted (a partial download is kept and resumed next time)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
