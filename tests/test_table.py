"""The survival table across campaigns (``python -m afr.report table`` / ``afr table``).

Three small real campaigns (two on synthetic with different agent seeds, one on heart_disease) are started
together once, in subprocesses; the other cases are copies of their ledgers with one recorded fact changed
(a task key, a task-neutral key, the campaign's status).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from afr.cli import main as afr_cli
from afr.evaluation import collect_findings, collect_survival_table, table_command, task_config
from afr.evaluation._classify import MECHANISM
from afr.report import main as report_main

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 600
SMALL = [
    "agent=evolve",
    "profile.rounds=2",
    "profile.local_steps=5",
    "campaign.runs_per_arm=3",
    "campaign.top_k=1",
    "campaign.final_seeds=2",
    "campaign.heldout_seeds=1",
    "campaign.workers=1",
]
COUNT_COLUMNS = ("proposed", "rejected", "duplicates", "failed", "run")
FUNNEL_COLUMNS = ("finalists", "search_gains", "repeats", "control", "heldout")


def _start(tmp: Path, *overrides: str) -> subprocess.Popen:
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["AFR_DATA_DIR"] = str(tmp / "data")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "afr.run", *SMALL, *overrides, f"campaign.dir={tmp / 'campaign'}"],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def campaigns(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict[str, Path]:
    """name -> campaign directory; the three campaigns run at once (≈30 s on two cores)."""
    base = tmp_path_factory.mktemp("table")
    procs = {
        "synthetic_a": _start(base / "synthetic_a", "profile=synthetic"),
        "synthetic_b": _start(base / "synthetic_b", "profile=synthetic", "campaign.seed=1"),
        "heart": _start(base / "heart", "profile=heart_disease", f"data_dir={shared_data}"),
    }
    dirs = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        assert proc.returncode == 0, f"{name}: {out}\n{err}"
        dirs[name] = base / name / "campaign"
    return dirs


def _copy(source: Path, target: Path, change: Callable[[sqlite3.Connection], None]) -> Path:
    """A copy of the campaign's ledger in ``target``, with ``change`` applied to the copy."""
    target.mkdir(parents=True)
    with sqlite3.connect(source / "ledger.db") as src, sqlite3.connect(target / "ledger.db") as dst:
        src.backup(dst)
        change(dst)
        dst.commit()
    return target


def _set_profile_cfg(**values: object) -> Callable[[sqlite3.Connection], None]:
    def change(db: sqlite3.Connection) -> None:
        config = json.loads(db.execute("SELECT config FROM afr_campaigns").fetchone()[0])
        config["profile_cfg"].update(values)
        db.execute("UPDATE afr_campaigns SET config = ?", (json.dumps(config),))

    return change


def _ledger_counts(directory: Path) -> dict[str, int]:
    """The agent's candidate counts, straight from the ledger's SQL."""
    with sqlite3.connect(directory / "ledger.db") as db:
        statuses = [s for (s,) in db.execute("SELECT status FROM afr_candidates WHERE arm = 'agent'")]
    return {
        "proposed": len(statuses),
        "rejected": statuses.count("rejected"),
        "duplicates": statuses.count("duplicate"),
        "failed": statuses.count("failed"),
        "run": statuses.count("ok") + statuses.count("failed"),
    }


def _markdown_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines if "---" not in line]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = table_command([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_task_config_drops_what_does_not_define_the_task() -> None:
    recorded = {
        "name": "synthetic",
        "alpha": 0.5,
        "rounds": 2,
        "device": "cpu",
        "budget_preset": "smoke",
        "seeds": {"final": [42, 43]},
        "grouping": {"rule": "hash", "why": "prose"},
        "verdict": {"margin": 0.01, "why": "prose", "detect": 0.03},
        "autocast": None,  # an optional key left unset: the same task as a config recorded without it
    }
    assert task_config(recorded) == task_config({k: v for k, v in recorded.items() if k != "autocast"})
    assert task_config(recorded) == {
        "name": "synthetic",
        "alpha": 0.5,
        "rounds": 2,
        "grouping.rule": "hash",
        "verdict.margin": 0.01,
    }


def test_rows_add_up_the_campaigns_of_each_profile(campaigns: dict[str, Path]) -> None:
    dirs = [campaigns["synthetic_a"], campaigns["heart"], campaigns["synthetic_b"]]
    table = collect_survival_table(dirs)
    rows = {row["profile"]: row for row in table.rows}
    assert [row["profile"] for row in table.rows] == ["synthetic", "heart_disease", "total"]
    members = {"synthetic": ["synthetic_a", "synthetic_b"], "heart_disease": ["heart"]}
    for profile, names in members.items():
        singles = [collect_survival_table([campaigns[n]]).rows[0] for n in names]
        for key in COUNT_COLUMNS:
            assert rows[profile][key] == sum(_ledger_counts(campaigns[n])[key] for n in names), (profile, key)
        for key in FUNNEL_COLUMNS:
            assert rows[profile][key] == sum(single[key] for single in singles), (profile, key)
    for key in COUNT_COLUMNS + FUNNEL_COLUMNS:
        assert rows["total"][key] == rows["synthetic"][key] + rows["heart_disease"][key], key
    assert rows["total"]["proposed"] > 0 and rows["total"]["finalists"] > 0
    assert any("synthetic: 2 campaigns" in note for note in table.notes)


def test_csv_and_markdown_agree(campaigns: dict[str, Path], tmp_path: Path, capsys) -> None:
    dirs = [campaigns["synthetic_a"], campaigns["heart"]]
    code, out, err = _run(
        [*dirs, "--csv", tmp_path / "t.csv", "--markdown", tmp_path / "md" / "t.md"], capsys
    )
    assert code == 0, err
    assert (tmp_path / "md" / "t.md").read_text() == out
    markdown = _markdown_rows(out)
    table = list(csv.reader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert table == [["" if cell == "n/a" else cell for cell in row] for row in markdown]
    assert [row[0] for row in table[1:]] == ["synthetic", "heart_disease", "total"]


def test_correct_widens_the_family_and_never_makes_a_mechanism(campaigns: dict[str, Path], capsys) -> None:
    dirs = list(campaigns.values())
    per_campaign = collect_survival_table(dirs)
    across = collect_survival_table(dirs, correct=True)
    total = across.rows[-1]["finalists"]
    assert total >= 2, "needs finalists from more than one campaign to widen the family"
    assert across.n_comparisons == total
    for own, wide in zip(per_campaign.campaigns, across.campaigns, strict=True):
        assert [v.name for v in own.verdicts] == [v.name for v in wide.verdicts]
        for before, after in zip(own.verdicts, wide.verdicts, strict=True):
            assert before.numbers["n_comparisons"] == len(own.verdicts)
            assert after.numbers["n_comparisons"] == total
            if after.label == MECHANISM:
                assert before.label == MECHANISM, after.name
    for before, after in zip(per_campaign.rows, across.rows, strict=True):
        assert all(after[k] <= before[k] for k in FUNNEL_COLUMNS), (before, after)
    code, out, _ = _run([*dirs, "--correct"], capsys)
    assert code == 0
    note = next(line for line in out.splitlines() if "across the whole table" in line)
    assert f"n_comparisons = {total}" in note and "p = 1" in note and "conservative" in note


def test_a_partial_campaign_adds_counts_but_no_verdicts(campaigns: dict[str, Path], tmp_path: Path) -> None:
    source = campaigns["synthetic_a"]
    partial = _copy(
        source,
        tmp_path / "interrupted",
        lambda db: db.execute("UPDATE afr_campaigns SET status='interrupted'"),
    )
    alone = collect_survival_table([source]).rows[0]
    table = collect_survival_table([source, partial])
    row = table.rows[0]
    assert all(row[k] == 2 * alone[k] for k in COUNT_COLUMNS)
    assert all(row[k] == alone[k] for k in FUNNEL_COLUMNS)
    notes = [note for note in table.notes if "no verdicts" in note]
    assert len(notes) == 1 and notes[0].startswith(f"{partial}: counts only, no verdicts: "), notes
    assert "interrupted" in notes[0]
    assert collect_findings(partial).partial


def test_keys_that_do_not_define_the_task_share_a_row(campaigns: dict[str, Path], tmp_path: Path) -> None:
    source = campaigns["synthetic_a"]
    other = _copy(
        source, tmp_path / "cpu", _set_profile_cfg(device="cpu", budget_preset="smoke", campaign_runs=2)
    )
    table = collect_survival_table([source, other])
    assert [row["profile"] for row in table.rows] == ["synthetic", "total"]


def test_mixed_profiles_are_refused_or_split_by_config(
    campaigns: dict[str, Path], tmp_path: Path, capsys
) -> None:
    source = campaigns["synthetic_a"]
    mixed = _copy(source, tmp_path / "alpha05", _set_profile_cfg(alpha=0.5, beta=0.5))
    code, out, err = _run([source, campaigns["heart"], mixed, "--csv", tmp_path / "t.csv"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("error: mixed profiles") and str(source) in err and str(mixed) in err
    assert "alpha" in err and "beta" in err and "--by-config" in err
    assert not (tmp_path / "t.csv").exists()

    code, out, err = _run([source, campaigns["heart"], mixed, "--by-config"], capsys)
    assert code == 0, err
    names = [row[0] for row in _markdown_rows(out)[1:]]
    assert names == [
        "synthetic (alpha=1, beta=1)",
        "synthetic (alpha=0.5, beta=0.5)",
        "heart_disease",
        "total",
    ]


def _not_sqlite(directory: Path) -> None:
    (directory / "ledger.db").write_text("not a database\n")


def _not_afr(directory: Path) -> None:
    with sqlite3.connect(directory / "ledger.db") as db:
        db.execute("CREATE TABLE trials (trial_id INTEGER)")


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (None, "no such campaign directory"),
        (lambda d: None, "has no ledger.db"),
        (_not_afr, "is not an AFR ledger"),
        (_not_sqlite, "is not an AFR ledger"),
    ],
    ids=["unknown-dir", "no-ledger", "not-afr-ledger", "not-sqlite"],
)
def test_bad_input_gives_one_line_and_writes_nothing(
    campaigns: dict[str, Path], tmp_path: Path, capsys, make, says: str
) -> None:
    bad = tmp_path / "bad"
    if make is not None:
        bad.mkdir()
        make(bad)
    before = {p.name: p.read_bytes() for p in bad.iterdir()} if bad.exists() else None
    outputs = [tmp_path / "out" / "t.csv", tmp_path / "out" / "t.md"]
    argv = [campaigns["synthetic_a"], bad, "--csv", outputs[0], "--markdown", outputs[1]]
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("error: ") and says in err and str(bad) in err and "fix:" in err
    assert not (tmp_path / "out").exists()
    assert (({p.name: p.read_bytes() for p in bad.iterdir()}) if bad.exists() else None) == before


def test_both_commands_and_the_report_still_work(campaigns: dict[str, Path], tmp_path: Path, capsys) -> None:
    directory = campaigns["synthetic_a"]
    assert afr_cli(["table", "--csv", str(tmp_path / "t.csv"), str(directory)]) == 0
    via_cli = capsys.readouterr().out
    assert _markdown_rows(via_cli)[1][0] == "synthetic" and (tmp_path / "t.csv").is_file()
    assert afr_cli(["table", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    # `python -m afr.report DIR` is still the report, `table` its sub-command.
    assert report_main([str(directory), "--output", str(tmp_path / "r.md")]) == 0
    assert "# AFR campaign report" in (tmp_path / "r.md").read_text()
    done = subprocess.run(
        [sys.executable, "-m", "afr.report", "table", str(directory), str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "no such campaign directory" in done.stderr
