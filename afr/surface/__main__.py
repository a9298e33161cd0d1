"""Command line: ``python -m afr.surface docs [--check] [--output PATH]`` and ``validate FILE``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ._docs import render_surface_docs
from ._hash import normalized_ast_hash
from ._table import all_tables, surface_table
from ._validator import validate

DEFAULT_OUTPUT = Path("docs") / "surface.md"


def _docs(args: argparse.Namespace) -> int:
    text = render_surface_docs()
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.is_file() else None
        if current != text:
            what = "is missing" if current is None else "is out of date with the surface tables"
            print(f"{output} {what}: run `python -m afr.surface docs` and commit the result", file=sys.stderr)
            return 1
        print(f"{output} is up to date")
        return 0
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    source = args.file.read_text(encoding="utf-8")
    tables = [surface_table(p) for p in args.profile] if args.profile else list(all_tables().values())
    failed = False
    for table in tables:
        report = validate(source, table, filename=str(args.file), package=args.package)
        print(f"[{table.profile}] {report}")
        failed = failed or not report.ok
    if not failed:  # an accepted file parses
        print(f"normalized AST hash: {normalized_ast_hash(source)}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m afr.surface", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    docs = commands.add_parser("docs", help="generate docs/surface.md from the surface tables")
    docs.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from the generated text"
    )
    docs.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    docs.set_defaults(run=_docs)
    check = commands.add_parser("validate", help="validate a candidate recipe file")
    check.add_argument("file", type=Path)
    check.add_argument("--profile", action="append", help="profile table(s) to use (default: every profile)")
    check.add_argument(
        "--package", help="resolve relative imports as a file of this package (e.g. afr.recipe)"
    )
    check.set_defaults(run=_validate)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
