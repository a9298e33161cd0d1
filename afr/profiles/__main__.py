"""Command lines: ``python -m afr.profiles docs [--data-dir D] [--searchpath D]... [--check] [--output PATH]``
and ``python -m afr.profiles margins [--check]`` (the margin table of ``docs/classification.md``).

``--searchpath`` adds the profiles of a config folder laid out as for ``hydra.searchpath``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import AFRError
from ._docs import render_margin_table, render_profiles_docs, with_margin_table

DEFAULT_OUTPUT = Path("docs") / "profiles.md"
CLASSIFICATION = Path("docs") / "classification.md"


def _margins(check: bool) -> int:
    """Refresh (or ``check``) the margin table between the markers of docs/classification.md."""
    current = CLASSIFICATION.read_text(encoding="utf-8")
    text = with_margin_table(current, render_margin_table())
    if check:
        if text != current:
            print(
                f"{CLASSIFICATION}: the margin table is stale: run `python -m afr.profiles margins`",
                file=sys.stderr,
            )
            return 1
        print(f"{CLASSIFICATION}: the margin table is up to date")
        return 0
    CLASSIFICATION.write_text(text, encoding="utf-8")
    print(f"wrote the margin table of {CLASSIFICATION}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m afr.profiles", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    docs = commands.add_parser("docs", help="generate docs/profiles.md from the profiles and their data")
    docs.add_argument(
        "--data-dir", type=Path, default=None, help="data folder (default: $AFR_DATA_DIR / cache)"
    )
    docs.add_argument(
        "--searchpath",
        action="append",
        default=[],
        metavar="DIR",
        help="also document the profiles of this config folder (<DIR>/profile/<name>.yaml, as for "
        "hydra.searchpath); repeatable",
    )
    docs.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from the generated text"
    )
    docs.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    margins = commands.add_parser("margins", help=f"refresh the profiles' margin table in {CLASSIFICATION}")
    margins.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    args = parser.parse_args(argv)
    if args.command == "margins":
        return _margins(args.check)
    try:
        text = render_profiles_docs(args.data_dir, args.searchpath)
    except AFRError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
        if current != text:
            what = "is missing" if current is None else "is out of date with the profiles"
            print(
                f"{args.output} {what}: run `python -m afr.profiles docs --data-dir ../shared/data` "
                "and commit it",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
