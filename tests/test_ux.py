"""What a campaign tells its user: one name per candidate everywhere, progress with an ETA, what each
finalist changed (and its saved source), a closing summary with the verdicts, partial reports marked."""

from __future__ import annotations

import inspect
import io
import re
import shutil
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest

from afr.campaign import Campaign
from afr.campaign._finals import run_finals
from afr.campaign._progress import CampaignProgress, format_eta, print_line
from afr.controls import open_storage
from afr.evaluation import LABELS, closing_summary, collect_findings, write_report
from afr.ledger import Ledger, candidate_name
from afr.report import main as report_main
from tests.test_campaign import conf, settings

NAME = re.compile(r"\b(?:agent|control|baseline)#\d+\b")


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """A small seeded campaign with finals, its console lines and its (non-terminal) progress output."""
    directory = tmp_path_factory.mktemp("ux") / "campaign"
    lines: list[str] = []
    stream = io.StringIO()
    run = Campaign(
        settings(directory, conf("agent", "evolve"), runs=3, final_seeds=2, heldout_seeds=1, top_k=1),
        echo=lines.append,
        progress=CampaignProgress(stream),
    )
    result = run.run()
    return directory, result, lines, stream.getvalue()


def test_the_name_format_has_one_home() -> None:
    assert candidate_name("agent", 30) == "agent#30"
    assert candidate_name("control", 12, "control-5") == "control#12"
    assert candidate_name("control", 1, "control-0") == "baseline#1"


def test_one_name_per_candidate_in_console_report_tensorboard_artifacts_and_dashboard(campaign) -> None:
    directory, result, lines, _ = campaign
    ledger = Ledger.for_campaign_dir(directory)
    ran = [c for c in ledger.candidates(result.campaign_id) if c.status in ("ok", "failed")]
    assert {c.arm for c in ran} == {"agent", "control"}
    console = "\n".join(lines)
    report = (directory / "report.md").read_text()
    assert " cand " not in console and "agent-0-" not in console and "agent-0-" not in report
    for c in ran:
        # the search line of this candidate carries its name
        assert any(line.startswith(f"[{c.arm:>7}] run") and f" {c.name} " in line for line in lines), c.name
        assert (directory / "tb" / c.name / "search-seed-0").is_dir()
        assert (directory / "artifacts" / c.name / "search-seed-0.pt").is_file()
        # the recipe file that made the weights is next to them
        assert (directory / "artifacts" / c.name / "recipe.py").read_text() == c.source
    assert any(c.name.startswith("baseline#") for c in ran), "the control's trial 0 is the baseline"
    # every name the console and the report use is a ledger candidate's name
    names = {c.name for c in ledger.candidates(result.campaign_id)}
    assert set(NAME.findall(console)) <= names and set(NAME.findall(report)) <= names
    finalists = collect_findings(directory).finalists
    for f in finalists:
        assert f"### {f.name} ({f.role})" in report
        assert any(line.startswith("[ finals]") and f" {f.name} " in line for line in lines)
        assert (directory / "artifacts" / f.name / "final-seed-42.pt").is_file()
    # Optuna dashboard: both studies' trials carry the same name as user attr "candidate"
    storage = open_storage(ledger.url)
    control = optuna.load_study(study_name="test/control", storage=storage)
    by_key = {c.meta.get("proposal_key"): c for c in ledger.candidates(result.campaign_id, arm="control")}
    for trial in control.get_trials(deepcopy=False):
        assert trial.user_attrs["candidate"] == by_key[f"control-{trial.number}"].name
    agent = optuna.load_study(study_name="test/agent", storage=storage)
    assert agent.get_trials(deepcopy=False)
    for trial in agent.get_trials(deepcopy=False):
        assert trial.user_attrs["candidate"] == ledger.candidate(trial.user_attrs["candidate_id"]).name


def test_agent_notes_name_parents_by_their_one_name(campaign) -> None:
    directory, result, _, _ = campaign
    ledger = Ledger.for_campaign_dir(directory)
    notes = [str(c.meta.get("note", "")) for c in ledger.candidates(result.campaign_id, arm="agent")]
    assert not any("candidate #" in note for note in notes)
    for note in notes:
        for name in NAME.findall(note):
            assert ledger.candidate(int(name.split("#")[1])).name == name


def test_report_lists_each_finalists_mechanisms_and_diff(campaign) -> None:
    directory, result, _, _ = campaign
    report = (directory / "report.md").read_text()
    findings = collect_findings(directory)
    section = report.split("## What each finalist changed (against the baseline)")[1].split("\n## ")[0]
    agent = next(f for f in findings.finalists if f.role == "agent")
    block = section.split(f"### {agent.name} (agent)")[1].split("\n### ")[0]
    mechanisms = agent.candidate.meta["mechanisms"]
    assert mechanisms and all(f"`{m}`" in block for m in mechanisms)
    assert f"+++ {agent.name}/recipe.py" in block and "```diff" in block
    assert f"artifacts/{agent.name}/recipe.py" in block
    baseline = section.split("(baseline)")[1].split("\n### ")[0]
    assert "diff: none" in baseline
    control = [f for f in findings.finalists if f.role == "control"]
    for f in control:
        tuned = section.split(f"### {f.name} (control)")[1].split("\n### ")[0]
        assert "tuned scalars only" in tuned and "scalars.json" in tuned


def test_closing_summary_names_the_best_verdicts_and_the_report(campaign) -> None:
    directory, _, lines, _ = campaign
    report_line = next(i for i, line in enumerate(lines) if line.startswith("report: "))
    summary = lines[next(i for i, line in enumerate(lines) if line.startswith("campaign 'test' ")) :]
    assert (
        3 <= len(summary) <= 5 and summary[-1] == lines[report_line] == f"report: {directory / 'report.md'}"
    )
    findings = collect_findings(directory)
    verdicts = next(line for line in summary if line.startswith("verdicts: "))
    assert findings.verdicts
    for v in findings.verdicts:
        assert f"{v.name} {v.label}" in verdicts and v.label in LABELS
    best = summary[0]
    assert all(f.name in best for f in findings.finalists)


def test_progress_lines_without_a_terminal(campaign) -> None:
    directory, result, _, progress = campaign
    lines = progress.splitlines()
    assert "\x1b" not in progress and "\r" not in progress, "plain lines only when not a terminal"
    finals = len(
        [r for r in Ledger.for_campaign_dir(directory).runs(result.campaign_id) if r.stage != "search"]
    )
    assert finals >= 10 and lines[-1] == f"finals: {finals}/{finals} runs, done"
    assert "search: 6/6 runs (agent 3/3, control 3/3), done" in lines
    pattern = re.compile(
        rf"^(search: \d+/6 runs \(agent \d/3, control \d/3\)|finals: \d+/{finals} runs), (ETA \S+|done)$"
    )
    assert all(pattern.match(line) for line in lines), lines


def test_progress_counts_rate_and_eta_from_this_process() -> None:
    now = [100.0]
    out = io.StringIO()
    progress = CampaignProgress(out, force_terminal=False, clock=lambda: now[0])
    with progress:
        progress.start("agent", 20, done=2)  # a resume: two runs were done before
        progress.start("control", 20)
        assert progress.eta("search") is None and progress.line("search").endswith("ETA ?")
        now[0] += 60
        progress.update("agent", 4)  # 2 runs in 60 s: 16 left -> 8 min
        progress.update("control", 4)  # 4 runs in 60 s: 16 left -> 4 min; the slower arm decides
        assert progress.eta("search") == pytest.approx(480)
        assert progress.line("search") == "search: 8/40 runs (agent 4/20, control 4/20), ETA 8m"
        progress.update("agent", 4, total=4)  # the agent arm stopped early
        assert progress.line("search").startswith("search: 8/24 runs (agent 4/4, control 4/20)")
    # a line each time another tenth of the stage is done; the early stop shrinks the total
    assert out.getvalue().splitlines() == [
        "search: 4/40 runs (agent 4/20, control 0/20), ETA ?",
        "search: 8/40 runs (agent 4/20, control 4/20), ETA 8m",
        "search: 8/24 runs (agent 4/4, control 4/20), ETA 4m",
    ]
    assert [format_eta(s) for s in (None, 5, 179, 3900)] == ["?", "5s", "3m", "1h05m"]


def test_progress_bars_on_a_forced_terminal() -> None:
    out = io.StringIO()
    with CampaignProgress(out, force_terminal=True) as progress:
        assert progress.live
        progress.start("control", 4)
        progress.start("finals", 10, done=3)
        progress.advance("control")
        progress.advance("finals", 2)
        print("a console line printed while the bars are up")
    text = out.getvalue()
    assert "\x1b[" in text and "search control" in text and "finals" in text
    assert "5/10" in text and "a console line printed while the bars are up" in text
    # as the campaign uses it: start() brings the bars up, close() takes them down
    out = io.StringIO()
    progress = CampaignProgress(out, force_terminal=True)
    progress.start("agent", 3)
    progress.update("agent", 2)
    progress.close()
    assert "search agent" in out.getvalue() and "2/3" in out.getvalue()
    assert "search: " not in out.getvalue(), "no plain lines on a terminal"


class _SlowStream(io.StringIO):
    """Records each write; yields the thread between writes, as a busy console does."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[str] = []

    def write(self, text: str) -> int:
        self.chunks.append(text)
        time.sleep(0.001)
        return super().write(text)


def test_console_lines_of_two_threads_never_run_together(monkeypatch) -> None:
    # The two arms print their per-run lines from two threads; print() writes text and newline apart, and
    # once ran a control line and an agent line into one ("...server_lr=0.0355[  agent] run 2/2 ...").
    for echo_default in (
        inspect.signature(Campaign).parameters["echo"].default,
        inspect.signature(run_finals).parameters["echo"].default,
    ):
        assert echo_default is print_line
    stream = _SlowStream()
    monkeypatch.setattr(sys, "stdout", stream)
    lines = {arm: [f"[{arm:>7}] run {i:>3}/20  ok" for i in range(20)] for arm in ("agent", "control")}
    threads = [
        threading.Thread(target=lambda mine=mine: [print_line(line) for line in mine])
        for mine in lines.values()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(chunk.endswith("\n") and chunk.count("\n") == 1 for chunk in stream.chunks), stream.chunks[:4]
    assert sorted(stream.getvalue().splitlines()) == sorted(lines["agent"] + lines["control"])


def test_a_report_of_an_interrupted_campaign_is_marked_partial(campaign, tmp_path: Path, capsys) -> None:
    directory, result, _, _ = campaign
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy, ignore=shutil.ignore_patterns("*.lock", "tb", "artifacts"))
    Ledger.for_campaign_dir(copy).finish_campaign(result.campaign_id, "interrupted")
    findings = collect_findings(copy)
    assert findings.partial.startswith("the campaign is interrupted") and not findings.verdicts
    text = write_report(copy, findings=findings).read_text()
    assert text.splitlines()[2].startswith("**Partial report: the campaign is interrupted")
    summary = closing_summary(findings, copy / "report.md")
    assert any(line.startswith("verdicts: none (partial: the campaign is interrupted") for line in summary)
    # `python -m afr.report` says the same on the console before where it wrote the report
    assert report_main([str(copy), "--output", str(tmp_path / "r.md")]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("campaign 'test' interrupted: best search validation")
    assert printed[-2].startswith("verdicts: none (partial: the campaign is interrupted")
    assert printed[-1] == f"wrote {tmp_path / 'r.md'}"


def test_each_sandboxed_run_records_which_engine_path_made_it(campaign) -> None:
    """The batched engine path is the default: a sandboxed run says which path ran (why, if per-client)."""
    directory, result, _, _ = campaign
    runs = [r for r in Ledger.for_campaign_dir(directory).runs(result.campaign_id) if r.status == "ok"]
    assert runs
    paths = {str((r.artifacts or {}).get("engine", "")).split(":")[0] for r in runs}
    assert paths <= {"batched", "per-client"} and paths, paths
