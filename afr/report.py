"""``python -m afr.report <campaign dir>``: write the campaign's report (Markdown + PNG plots).

``python -m afr.report <database URL> --campaign NAME``: the same for a campaign whose records are in a
database (``campaign.storage=``); the report goes to ``afr_campaigns/<name>/report.md`` unless ``--output``.

``python -m afr.report table <campaign dirs…>``: the survival table across campaigns (Markdown on stdout).
"""

from __future__ import annotations

import argparse
import sys

from .errors import AFRError

TABLE_EPILOG = (
    "python -m afr.report table CAMPAIGN_DIR [CAMPAIGN_DIR ...] [--correct] [--by-config] [--markdown PATH] "
    "[--csv PATH] prints the survival table across campaigns (see python -m afr.report table --help); "
    "a campaign directory named 'table' is given as ./table"
)


def main(argv: list[str] | None = None, prog: str = "python -m afr.report") -> int:
    """Run the command (``afr report`` calls it with its own ``prog``); return its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["table"]:
        from .evaluation import table_command

        return table_command(argv[1:], prog=f"{prog} table")
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, epilog=TABLE_EPILOG)
    parser.add_argument(
        "campaign_dir",
        metavar="CAMPAIGN",
        help="the campaign directory (holds ledger.db), or the database URL of its campaign.storage=",
    )
    parser.add_argument(
        "--campaign",
        metavar="NAME",
        help="which campaign of the ledger (needed for a database that holds several)",
    )
    parser.add_argument(
        "--output",
        help="where to write the Markdown (default: <campaign dir>/report.md; for a database URL: "
        "afr_campaigns/<name>/report.md, the default campaign.dir)",
    )
    parser.add_argument(
        "--worked-example",
        action="store_true",
        help="write the worked example (baseline construction, one candidate's path) instead of the report",
    )
    args = parser.parse_args(argv)
    from pathlib import Path

    from ._url import is_database_url  # not afr.ledger's re-export: SQLAlchemy is slow to load

    from_url = is_database_url(args.campaign_dir)
    if not from_url and not (Path(args.campaign_dir) / "ledger.db").is_file():
        print(
            f"error: no ledger.db in {args.campaign_dir}\n  fix: give the directory of a campaign, or "
            "the database URL of its campaign.storage= (with --campaign NAME)",
            file=sys.stderr,
        )
        return 2
    # after the input check: a slow import
    from contextlib import closing

    from .evaluation import closing_summary, collect_findings, render_worked_example, write_report
    from .ledger import find_campaign, open_ledger

    summary: list[str] = []
    try:
        with closing(open_ledger(args.campaign_dir, where=prog)) as ledger:
            name = find_campaign(ledger, args.campaign).name
            folder = Path("afr_campaigns") / name if from_url else Path(args.campaign_dir)
            if args.worked_example:
                path = Path(args.output) if args.output else folder / "worked_example.md"
                text = render_worked_example(ledger, name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            else:
                findings = collect_findings(ledger, name)
                path = write_report(folder, args.output, findings=findings)
                # what the campaign found (a running or interrupted one: marked partial, nothing classified)
                summary = closing_summary(findings)
    except AFRError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(*summary, f"wrote {path}", sep="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
