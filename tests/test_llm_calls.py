"""Every model call is logged in the ledger (afr_llm_calls) and shown in the report; old ledgers open."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from afr.campaign import Campaign
from afr.ledger import SCHEMA_VERSION, Ledger, LedgerError
from tests._fake_openai import FakeOpenAI
from tests.test_llm_operations import GOOD, local_agent, settings

# --- the schema ------------------------------------------------------------------------------------


def _as_version_1(path: Path) -> None:
    """Make ``path`` look like a ledger written by schema version 1 (before the call log)."""
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE afr_llm_calls")
        db.execute("DROP TABLE afr_notes")
        db.execute("DROP TABLE afr_workers")
        db.execute("UPDATE afr_meta SET value = '1' WHERE key = 'schema_version'")


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_version_1_ledger_opens_and_gets_the_call_log(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger(f"sqlite:///{path}") as ledger:
        cid = ledger.start_campaign("c", "synthetic", "local", {})
        ledger.add_cost(cid, arm="agent", kind="llm", model="m", prompt_tokens=7)
    _as_version_1(path)
    assert "afr_llm_calls" not in _tables(path)
    with Ledger(f"sqlite:///{path}") as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION == 3
        assert ledger.campaign(cid).name == "c"
        assert ledger.cost_totals(cid)["agent"]["prompt_tokens"] == 7  # old records untouched
        assert ledger.llm_calls(cid) == [] and ledger.notes(cid) == []
        ledger.add_llm_call(cid, arm="agent", purpose="propose", reply="r", latency_s=1.5)
        assert [c["reply"] for c in ledger.llm_calls(cid)] == ["r"]
    assert {"afr_llm_calls", "afr_notes"} <= _tables(path)


def test_a_current_ledger_without_the_call_log_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE afr_llm_calls")
    with pytest.raises(LedgerError, match="afr_llm_calls"):
        Ledger(f"sqlite:///{path}")
    assert "afr_llm_calls" not in _tables(path), "never recreated for a ledger that should have it"


def test_an_unversioned_ledger_gets_the_call_log_too(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger(f"sqlite:///{path}").close()
    _as_version_1(path)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE afr_meta")
    with Ledger(f"sqlite:///{path}") as ledger:
        assert ledger.schema_version() == SCHEMA_VERSION
    assert "afr_llm_calls" in _tables(path)


# --- a campaign ------------------------------------------------------------------------------------


def test_every_call_is_logged_and_reported(tmp_path: Path) -> None:
    """An unusable reply, its re-ask, then a reply with no rationale: three calls, each in the ledger with
    the request as the server got it; the proposal's meta is stored though it has no rationale."""
    no_rationale = GOOD.format(n=2, beta=0.7).split("\n", 2)[2]
    script = ["Only prose, no file.", GOOD.format(n=1, beta=0.5), no_rationale]
    with FakeOpenAI(script) as server:
        result = Campaign(settings(tmp_path / "c", local_agent(server)), echo=lambda _: None).run()
        sent = [r["messages"] for r in server.requests]
    ledger = Ledger.for_campaign_dir(tmp_path / "c")
    calls = ledger.llm_calls(result.campaign_id)
    assert [c["purpose"] for c in calls] == ["propose", "retry", "propose"]
    assert [c["request"]["messages"] for c in calls] == sent
    assert [c["reply"] for c in calls] == script
    for call in calls:
        assert call["prompt_tokens"] > 0 and call["completion_tokens"] > 0 and call["cost_id"] is not None
        assert call["latency_s"] >= 0 and call["started_at"] <= call["finished_at"]
        assert call["attempts"] == 1 and call["error"] == "" and call["finish_reason"] == "stop"
    agent = ledger.candidates(result.campaign_id, arm="agent")
    assert len(agent) == 2 and all(c.meta.get("model") for c in agent)
    assert agent[1].meta.get("note") is None and agent[1].meta["calls"] == 1
    report = (tmp_path / "c" / "report.md").read_text()
    assert "## Agent model calls" in report and "3 calls (propose 2, retry 1; 0 without an answer)" in report
    assert "stopped early" not in report


def test_the_report_says_why_the_agent_arm_stopped(tmp_path: Path) -> None:
    with FakeOpenAI(["Only prose, no file."] * 20) as server:
        campaign = Campaign(
            settings(tmp_path / "c", local_agent(server), max_agent_calls=2), echo=lambda _: None
        )
        result = campaign.run()
    report = (tmp_path / "c" / "report.md").read_text()
    assert result.stopped_early and f"The agent arm stopped early: {result.stopped_early}." in report
    assert "4 calls (propose 2, retry 2" in report
