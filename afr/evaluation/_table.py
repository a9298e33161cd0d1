"""The survival table across campaigns: ``python -m afr.report table <campaign dirs…>`` (also ``afr table``).

A database URL (``campaign.storage=``) may stand for a directory: it adds every campaign it holds, or those
named with ``--campaign NAME`` (repeatable; the names filter every source given).

One row per task (a profile; several campaigns of one profile add up) and a ``total`` row, with the columns
of :func:`survival_table`: proposed, rejected by the validator, duplicates, failed, run, finalists, gains in
search, surviving repeats, surviving the control, surviving held-out. Read from the ledgers alone.

What defines a row (a task) is the campaign's recorded profile config minus :data:`TASK_NEUTRAL_KEYS`:
the data, its split into clients and held-out, the model, what one run trains (rounds, local steps, batch
size) and the practical margin. Campaigns of one profile that differ there are not one task: the table
refuses to add them up unless ``by_config`` gives each distinct config its own row.

A campaign whose finals are incomplete contributes its counts but no verdicts (a note says so).
``correct=True`` re-classifies every campaign's agent finalists with the multiple-comparison family being
all agent finalists of the table; the members from other campaigns count as p = 1 (their seeds are paired
with another control), which is conservative: a finalist can only lose a stage, never gain one.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._mappings import flatten
from ..errors import AFRError, ConfigError
from ..ledger import LEDGER_FILE, CampaignRow, LedgerError, is_database_url, open_ledger
from ._classify import SURVIVAL_COLUMNS, Verdict, classify_all, render_table_markdown, survival_table
from ._report import CampaignFindings, collect_findings

__all__ = [
    "TASK_NEUTRAL_KEYS",
    "task_config",
    "TabledCampaign",
    "SurvivalTable",
    "collect_survival_table",
    "render_table_csv",
    "table_command",
]

TASK_NEUTRAL_KEYS: tuple[str, ...] = (
    # the budget preset's name: the values it sets (rounds, local steps, data caps, model) are compared
    "budget_preset",
    # where and how fast a run computes, not what it computes
    "device",
    "eval_batch_size",
    "volume_cache",
    # how long the search ran and with which seeds: the counts add up, verdicts pair within a campaign
    "campaign_runs",
    "seeds",
    # what the search started from and what it may change: each campaign's own protocol
    "baseline",
    "recipes",
    "search_space",
    "contract",
    # how the finals were sized (the margin, verdict.margin, does define the task)
    "verdict.paired_sd",
    "verdict.detect",
    "verdict.final_seeds",
)
"""Dotted keys (and everything below them) of a recorded profile config that do not change the task.

Every other key defines it, new keys included (so a key nobody thought of splits rows rather than mixing
them); prose keys (``why``, ``sd_source``) never do."""

_PROSE_KEYS = frozenset({"why", "sd_source"})


def _neutral(path: str) -> bool:
    if path.rsplit(".", 1)[-1] in _PROSE_KEYS:
        return True
    return any(path == key or path.startswith(key + ".") for key in TASK_NEUTRAL_KEYS)


def task_config(profile_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a recorded profile config that define the task (dotted paths -> values).

    A key set to null is the same task as the key absent: a campaign recorded before a profile gained an
    optional key (e.g. ``autocast: null``) is the same task as one recorded after."""
    return {
        path: value
        for path, value in flatten(profile_cfg).items()
        if not _neutral(path) and value is not None
    }


_UNSET = object()


def _value_text(value: Any) -> str:
    if value is _UNSET:
        return "unset"
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _differing_keys(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    keys = sorted({k for config in configs for k in config})
    return [k for k in keys if any(c.get(k, _UNSET) != configs[0].get(k, _UNSET) for c in configs)]


def _describe(config: Mapping[str, Any], keys: Sequence[str]) -> str:
    return ", ".join(f"{k}={_value_text(config.get(k, _UNSET))}" for k in keys)


@dataclass
class TabledCampaign:
    """One campaign of the table: where it is, which row it adds to, and the verdicts the table counts."""

    directory: Path | str
    """The campaign directory, or the database URL its records are in (labels show it password hidden)."""
    campaign_id: int
    label: str
    """How notes and errors name it: the directory (and the campaign's name when its ledger holds several)."""
    profile: str
    task: dict[str, Any]
    """Its :func:`task_config`."""
    row: str = ""
    findings: CampaignFindings | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    """The verdicts counted in the table: the campaign's own, or re-classified across the table."""


@dataclass
class SurvivalTable:
    """The survival table across campaigns: rows (as :func:`survival_table` makes them) and their notes."""

    rows: list[dict[str, Any]]
    campaigns: list[TabledCampaign]
    notes: list[str]
    """Which campaigns each row adds up, how the verdicts were corrected, which campaigns gave no verdicts."""
    n_comparisons: int | None = None
    """With ``correct``: the family size every verdict was corrected over (all agent finalists)."""

    def markdown(self) -> str:
        """The table in Markdown, then one bullet per note."""
        return render_table_markdown(self.rows) + "\n" + "".join(f"- {note}\n" for note in self.notes)

    def csv(self) -> str:
        """The table as CSV (the Markdown's headers; an unknown count is an empty cell)."""
        return render_table_csv(self.rows)


def render_table_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """CSV of :func:`survival_table` rows, with the headers of :func:`render_table_markdown`."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([SURVIVAL_COLUMNS.get(k, k) for k in keys])
    for row in rows:
        writer.writerow(["" if row.get(k) is None else row[k] for k in keys])
    return out.getvalue()


# --- reading the campaigns --------------------------------------------------------------------------

_FIX_DIR = (
    "give the directories of campaigns (each holds the ledger.db that `python -m afr.run agent=...` wrote)"
)


def _campaign_ids(directory: Path) -> list[int]:
    """The campaigns in the directory's ledger, checked read-only (a bad input must not be written to)."""
    if not directory.is_dir():
        raise LedgerError(f"no such campaign directory: {directory}", fix=_FIX_DIR)
    path = directory / LEDGER_FILE
    if not path.is_file():
        raise LedgerError(f"{directory} is not a campaign directory: it has no {LEDGER_FILE}", fix=_FIX_DIR)
    table = CampaignRow.__tablename__
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            ids = (
                [int(i) for (i,) in db.execute(f"SELECT id FROM {table} ORDER BY id")]
                if table in tables
                else None
            )
    except sqlite3.DatabaseError as exc:
        raise LedgerError(f"{path} is not an AFR ledger ({exc})", fix=_FIX_DIR) from exc
    if ids is None:
        raise LedgerError(f"{path} is not an AFR ledger (it has no {table} table)", fix=_FIX_DIR)
    if not ids:
        raise LedgerError(
            f"{path} holds no campaign", fix="give the directory of a campaign that has started"
        )
    return ids


def _read_campaigns(
    campaign_dirs: Sequence[str | Path], names: Sequence[str] | None = None
) -> list[TabledCampaign]:
    if not campaign_dirs:
        raise ConfigError("no campaign directory given", fix=_FIX_DIR)
    seen: dict[Path | str, str] = {}
    for given in campaign_dirs:
        key = str(given) if is_database_url(given) else Path(given).expanduser().resolve()
        if key in seen:
            raise ConfigError(
                f"the campaign directory {given} is given twice (also as {seen[key]})",
                fix="give each campaign once: its counts would add up twice",
            )
        seen[key] = str(given)
    # Every directory checked read-only before any ledger is opened: a bad input must not be written to (a
    # database URL is checked as it is opened, and a database without a ledger is refused, not given one).
    found: list[tuple[str | Path, list[int] | None]] = [
        (str(given), None) if is_database_url(given) else (Path(given), _campaign_ids(Path(given)))
        for given in campaign_dirs
    ]
    campaigns = []
    wanted, named = set(names or ()), set()
    for source, ids in found:
        with closing(open_ledger(source, where="afr table")) as ledger:
            records = ledger.campaigns() if ids is None else [ledger.campaign(i) for i in ids]
            shown = ledger.shown_url if ids is None else str(source)
            if wanted:
                records = [r for r in records if r.name in wanted]
            elif not records:
                raise LedgerError(f"{shown} holds no campaign", fix="give a database a campaign ran in")
            for record in records:
                named.add(record.name)
                # a database is named with the campaign always: it is no campaign's own, as a directory is
                one = len(records) == 1 and ids is not None
                label = shown if one else f"{shown} (campaign {record.name!r})"
                profile_cfg = record.config.get("profile_cfg") or {}
                campaigns.append(
                    TabledCampaign(source, record.id, label, record.profile, task_config(profile_cfg))
                )
    missing = sorted(wanted - named)
    if missing:
        raise LedgerError(
            f"no campaign named {', '.join(map(repr, missing))} in {', '.join(map(str, campaign_dirs))}",
            fix="give the names the campaigns ran under (campaign.name=...)",
        )
    return campaigns


def _assign_rows(campaigns: Sequence[TabledCampaign], by_config: bool) -> None:
    """Name each campaign's row: its profile, or with ``by_config`` its profile and distinct task keys."""
    for profile in dict.fromkeys(c.profile for c in campaigns):
        members = [c for c in campaigns if c.profile == profile]
        distinct: list[dict[str, Any]] = []
        for c in members:
            if c.task not in distinct:  # == on values: 1 and 1.0 are the same alpha
                distinct.append(c.task)
        if len(distinct) == 1:
            for c in members:
                c.row = profile
            continue
        keys = _differing_keys(distinct)
        if not by_config:
            groups = [
                ", ".join(c.label for c in members if c.task == d) + f" ({_describe(d, keys)})"
                for d in distinct
            ]
            raise ConfigError(
                f"mixed profiles: the {profile} campaigns differ in {', '.join(keys)}, which define the "
                "task: " + " vs ".join(groups),
                fix="table them separately, or give --by-config for one row per distinct config "
                f"(e.g. {profile} ({_describe(distinct[-1], keys)}))",
            )
        for c in members:
            c.row = f"{profile} ({_describe(c.task, keys)})"


def _reclassify(findings: CampaignFindings, n_comparisons: int) -> list[Verdict]:
    """The campaign's agent finalists classified again, corrected over a family of ``n_comparisons``."""
    evidence = list(findings.evidence.values())
    baseline = next(ev for ev in evidence if ev.arm == "baseline")
    control = next((ev for ev in evidence if ev.arm == "control"), baseline)
    agents = [ev for ev in evidence if ev.arm == "agent"]
    return classify_all(
        agents,
        baseline,
        control,
        rules=findings.rules,
        higher_is_better=findings.higher_is_better,
        n_comparisons=n_comparisons,
    )


def collect_survival_table(
    campaign_dirs: Sequence[str | Path],
    *,
    correct: bool = False,
    by_config: bool = False,
    names: Sequence[str] | None = None,
) -> SurvivalTable:
    """The survival table of the campaigns in ``campaign_dirs`` (see the module docstring): directories or
    database URLs; ``names`` keeps only the campaigns of those names.

    Raises ``LedgerError`` for a directory that is not a campaign's or a ledger that is not AFR's, and
    ``ConfigError`` for campaigns of one profile whose tasks differ (unless ``by_config``); nothing is
    written to any of them.
    """
    campaigns = _read_campaigns(campaign_dirs, names)
    _assign_rows(campaigns, by_config)
    for c in campaigns:
        c.findings = collect_findings(c.directory, c.campaign_id)
        c.verdicts = list(c.findings.verdicts)
    n_comparisons = None
    if correct:
        n_comparisons = sum(len(c.verdicts) for c in campaigns)
        for c in campaigns:
            if c.verdicts and c.findings is not None:
                c.verdicts = _reclassify(c.findings, n_comparisons)

    profiles = list(dict.fromkeys(c.profile for c in campaigns))
    ordered = sorted(campaigns, key=lambda c: profiles.index(c.profile))  # a profile's rows side by side
    rows_of = dict.fromkeys(c.row for c in ordered)
    verdicts: dict[str, list[Verdict]] = {row: [] for row in rows_of}
    counts: dict[str, dict[str, int]] = {row: {} for row in rows_of}
    for c in campaigns:
        assert c.findings is not None
        verdicts[c.row] += c.verdicts
        for key, value in c.findings.counts.items():
            counts[c.row][key] = counts[c.row].get(key, 0) + value
    rows = survival_table(verdicts, counts, arm="agent")
    return SurvivalTable(rows, campaigns, _notes(ordered, n_comparisons), n_comparisons)


def _notes(campaigns: Sequence[TabledCampaign], n_comparisons: int | None) -> list[str]:
    notes = []
    for row in dict.fromkeys(c.row for c in campaigns):
        members = [c.label for c in campaigns if c.row == row]
        notes.append(
            f"{row}: {len(members)} campaign{'s' if len(members) > 1 else ''} ({', '.join(members)})"
        )
    corrections = sorted({c.findings.rules.correction for c in campaigns if c.findings is not None})
    method = "/".join(corrections) or "holm"
    if n_comparisons is None:
        notes.append(f"Verdicts corrected per campaign ({method} over each campaign's agent finalists).")
    else:
        notes.append(
            f"Verdicts corrected across the whole table ({method} over all {n_comparisons} agent finalists: "
            f"n_comparisons = {n_comparisons}); each finalist is tested against its own campaign's "
            "baseline and control, so the members from other campaigns count as p = 1, which is "
            "conservative: a finalist can only lose a stage, never gain one."
        )
    for c in campaigns:
        assert c.findings is not None
        if c.findings.partial:
            notes.append(f"{c.label}: counts only, no verdicts: {c.findings.partial}.")
    return notes


# --- the command ------------------------------------------------------------------------------------

_DESCRIPTION = (
    "One survival table across campaigns: a row per profile (several campaigns of one profile add up) and a "
    "total row; Markdown on stdout. A row is a task: campaigns of one profile must agree on their recorded "
    "profile config, except keys that do not change the task ("
    + ", ".join(TASK_NEUTRAL_KEYS)
    + ", and prose such as why); otherwise give --by-config. A campaign whose finals are incomplete adds "
    "its counts but no verdicts."
)


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=_DESCRIPTION)
    parser.add_argument(
        "campaign_dirs",
        nargs="+",
        metavar="CAMPAIGN_DIR",
        help="campaign directories, or database URLs of campaign.storage= (each adds all its campaigns)",
    )
    parser.add_argument(
        "--campaign",
        action="append",
        metavar="NAME",
        dest="names",
        help="only the campaign of this name (repeatable): to pick campaigns out of a database",
    )
    parser.add_argument("--markdown", metavar="PATH", help="also write the Markdown table (and notes) here")
    parser.add_argument("--csv", metavar="PATH", help="also write the table as CSV here")
    parser.add_argument(
        "--correct",
        action="store_true",
        help="correct across the whole table instead of per campaign: every agent finalist is re-classified "
        "with the family being all agent finalists of the table; the members from other campaigns count as "
        "p = 1, which is conservative (a finalist can only lose a stage)",
    )
    parser.add_argument(
        "--by-config",
        action="store_true",
        help="one row per distinct task config of a profile (named e.g. 'synthetic (alpha=0.5, beta=0.5)') "
        "instead of refusing campaigns of one profile whose tasks differ",
    )
    return parser


def _one_line(exc: AFRError) -> str:
    text = exc.what + (f" (in {exc.where})" if exc.where else "") + (f"; fix: {exc.fix}" if exc.fix else "")
    return " ".join(text.split())


def table_command(argv: Sequence[str], prog: str = "python -m afr.report table") -> int:
    """Run the table command on ``argv`` (the words after ``table``); return the exit code (2 on bad input,
    then nothing is written)."""
    try:
        args = _parser(prog).parse_args(list(argv))
    except SystemExit as exc:  # --help, or bad usage (argparse printed why)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        table = collect_survival_table(
            args.campaign_dirs, correct=args.correct, by_config=args.by_config, names=args.names
        )
    except AFRError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    markdown = table.markdown()
    for path, text in ((args.markdown, markdown), (args.csv, table.csv())):
        if path:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text, encoding="utf-8")
            except OSError as exc:
                print(
                    f"error: cannot write {path} ({exc.strerror or exc}); fix: give a writable path",
                    file=sys.stderr,
                )
                return 2
    sys.stdout.write(markdown)
    return 0
