"""The campaign ledger on SQLite files: tables, resume, duplicates, runs, scores, costs, persistence."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from afr.errors import ConfigError
from afr.ledger import CandidateRecord, Ledger, LedgerError

CONFIG = {"profile": "heart_disease", "budget": {"runs": 40, "client_steps": 10_000}, "seeds": [0, 1]}


@pytest.fixture()
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.for_campaign_dir(tmp_path / "campaign")
    yield led
    led.close()


def add(ledger: Ledger, cid: int, ast_hash: str, **kwargs: object) -> int:
    fields: dict[str, object] = {"arm": "agent", "agent": "evolve", "source": "src", "diff": ""}
    fields.update(kwargs)
    return ledger.add_candidate(cid, ast_hash=ast_hash, **fields)  # type: ignore[arg-type]


def test_tables_created_all_prefixed(ledger: Ledger, tmp_path: Path) -> None:
    db = tmp_path / "campaign" / "ledger.db"
    assert db.is_file() and ledger.url == f"sqlite:///{db}"
    names = {r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")}
    assert {"afr_campaigns", "afr_candidates", "afr_runs", "afr_costs", "afr_charges"} <= names
    assert all(n.startswith("afr_") for n in ledger.table_names())
    assert sqlite3.connect(db).execute("pragma journal_mode").fetchone()[0] == "wal"


def test_campaign_resume_by_name(ledger: Ledger) -> None:
    cid = ledger.start_campaign("c1", "heart_disease", "evolve", CONFIG)
    # same config in another key order: same hash, same campaign
    same = {"seeds": [0, 1], "budget": {"client_steps": 10_000, "runs": 40}, "profile": "heart_disease"}
    assert ledger.start_campaign("c1", "heart_disease", "evolve", same) == cid
    with pytest.raises(ConfigError, match="different config") as err:
        ledger.start_campaign("c1", "heart_disease", "evolve", {**CONFIG, "seeds": [0]})
    assert "new campaign name" in str(err.value)
    assert "seeds: stored [0, 1], now [0]" in str(err.value), "the refusal says what differs"
    changed = {**CONFIG, "budget": {"client_steps": 10_000}, "lookahead": 2}
    with pytest.raises(ConfigError, match="different config") as err:
        ledger.start_campaign("c1", "heart_disease", "evolve", changed)
    assert "budget.runs: stored 40, now (not set); lookahead: stored (not set), now 2" in str(err.value)
    assert ledger.start_campaign("c2", "heart_disease", "evolve", CONFIG) != cid
    ledger.finish_campaign(cid, "interrupted")
    assert ledger.campaign(cid).status == "interrupted" and ledger.campaign(cid).finished_at is not None
    assert ledger.start_campaign("c1", "heart_disease", "evolve", CONFIG) == cid
    assert ledger.campaign(cid).status == "running" and ledger.campaign(cid).config == CONFIG


def test_duplicate_detection_by_ast_hash(ledger: Ledger) -> None:
    cid = ledger.start_campaign("c", "p", "evolve", CONFIG)
    first = add(ledger, cid, "h1")
    other = add(ledger, cid, "h2")
    dup = add(ledger, cid, "h1", parent_id=first)
    dup2 = add(ledger, cid, "h1")
    assert ledger.candidate(first).status == "proposed" and ledger.candidate(other).status == "proposed"
    for d in (dup, dup2):
        rec = ledger.candidate(d)
        assert rec.status == "duplicate" and rec.duplicate_of == first  # never points at a duplicate
        assert any("duplicate of candidate" in r for r in rec.reasons)
    # control trials share the baseline source: duplicates only when the scalars repeat too
    t1 = add(ledger, cid, "base", arm="control", agent="optuna", scalars={"lr": 0.1})
    t2 = add(ledger, cid, "base", arm="control", agent="optuna", scalars={"lr": 0.2})
    t3 = add(ledger, cid, "base", arm="control", agent="optuna", scalars={"lr": 0.1})
    assert [ledger.candidate(t).status for t in (t1, t2, t3)] == ["proposed", "proposed", "duplicate"]
    assert ledger.candidate(t3).duplicate_of == t1
    # another campaign does not see these hashes
    other_cid = ledger.start_campaign("c-other", "p", "evolve", CONFIG)
    assert ledger.candidate(add(ledger, other_cid, "h1")).status == "proposed"
    assert [c.id for c in ledger.candidates(cid, status="duplicate")] == [dup, dup2, t3]
    assert [c.id for c in ledger.candidates(cid, arm="control")] == [t1, t2, t3]


def test_candidates_are_numbered_within_their_arm(ledger: Ledger) -> None:
    """Names come from per-arm numbers (the arms search side by side: row ids interleave by timing)."""
    cid = ledger.start_campaign("c", "p", "evolve", CONFIG)
    base = add(
        ledger,
        cid,
        "b",
        arm="control",
        agent="optuna",
        scalars={"lr": 0.1},
        meta={"proposal_key": "control-0"},
    )
    a1 = add(ledger, cid, "h1", meta={"number": 99})  # a caller cannot choose the number
    t1 = add(ledger, cid, "b", arm="control", agent="optuna", scalars={"lr": 0.2})
    a2 = add(ledger, cid, "h2")
    dup = add(ledger, cid, "h1")
    names = [ledger.candidate(c).name for c in (base, a1, t1, a2, dup)]
    assert names == ["baseline#1", "agent#1", "control#2", "agent#2", "agent#3"]
    assert ledger.candidate(dup).reasons == ("duplicate of candidate agent#1 (same ast_hash and scalars)",)
    # the number is the candidate's identity: a new meta keeps it
    assert ledger.update_candidate(a2, meta={"note": "x"}).meta == {"note": "x", "number": 2}
    assert ledger.update_candidate(a2, meta={"number": 7}).name == "agent#2"


def test_a_campaign_begun_before_per_arm_numbers_keeps_naming_by_row_id(ledger: Ledger) -> None:
    cid = ledger.start_campaign("old", "p", "evolve", CONFIG)
    old = add(ledger, cid, "h1")
    with ledger.write_session() as session:  # as an older AFR wrote it: no number in the meta
        session.execute(text("UPDATE afr_candidates SET meta = '{}' WHERE id = :i"), {"i": old})
    later = [add(ledger, cid, "h2"), add(ledger, cid, "h3", arm="control", agent="optuna")]
    assert [ledger.candidate(c).name for c in (old, *later)] == [
        f"agent#{old}",
        *(f"{arm}#{c}" for arm, c in zip(("agent", "control"), later, strict=True)),
    ]
    other = ledger.start_campaign("new", "p", "evolve", CONFIG)  # a new campaign of the same ledger: numbered
    assert ledger.candidate(add(ledger, other, "h9")).name == "agent#1"


def test_candidate_snapshot_and_update(ledger: Ledger) -> None:
    cid = ledger.start_campaign("c", "p", "evolve", CONFIG)
    can = add(ledger, cid, "h", meta={"prompt": "x"})
    rec = ledger.update_candidate(can, status="rejected", reasons=["uses torch.load"], score=float("nan"))
    assert isinstance(rec, CandidateRecord) and rec.status == "rejected" and rec.score is None
    assert ledger.candidate(can).reasons == ("uses torch.load",) and ledger.candidate(can).meta == {
        "prompt": "x",
        "number": 1,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.status = "ok"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ledger.update_candidate(can, campaign_id=3)
    with pytest.raises(ValueError):
        ledger.update_candidate(can, status="great")
    with pytest.raises(LedgerError):
        ledger.candidate(999)


def test_start_run_idempotent_on_run_key(ledger: Ledger) -> None:
    cid = ledger.start_campaign("c", "p", "evolve", CONFIG)
    can = add(ledger, cid, "h")
    key = f"agent/cand-{can}/search/seed-0"
    rid = ledger.start_run(cid, can, key, 0, "search", "val")
    assert ledger.start_run(cid, can, key, 0, "search", "val") == rid
    assert len(ledger.runs(cid)) == 1 and ledger.run_by_key(cid, key).id == rid  # type: ignore[union-attr]
    assert ledger.run_by_key(cid, "nope") is None
    with pytest.raises(LedgerError, match="already names run"):
        ledger.start_run(cid, can, key, 1, "search", "val")
    rid2 = ledger.start_run(cid, can, f"agent/cand-{can}/search/seed-1", 1, "search", "val")
    assert rid2 != rid and [r.id for r in ledger.runs(cid, stage="search", candidate_id=can)] == [rid, rid2]


def test_finish_run_round_trips_json(ledger: Ledger) -> None:
    cid = ledger.start_campaign("c", "p", "evolve", CONFIG)
    rid = ledger.start_run(cid, add(ledger, cid, "h"), "k", 0, "final", "test")
    per_round = [{"round": 0, "loss": 0.7, "auc": 0.61}, {"round": 1, "loss": float("nan"), "auc": 0.7}]
    ledger.finish_run(
        rid,
        status="ok",
        per_round=per_round,
        final_metric=0.7,
        runtime_s=1.5,
        steps=1200,
        bytes_up=10**10,
        bytes_down=42,
        artifacts={"model": "runs/k/model.pt"},
        message="done",
    )
    run = ledger.run(rid)
    assert run.status == "ok" and run.finished_at is not None and run.finished_at >= run.started_at
    assert list(run.per_round or ()) == [per_round[0], {"round": 1, "loss": None, "auc": 0.7}]
    assert (run.final_metric, run.runtime_s, run.steps, run.bytes_up, run.bytes_down) == (
        0.7,
        1.5,
        1200,
        10**10,
        42,
    )
    assert run.artifacts == {"model": "runs/k/model.pt"} and run.message == "done"
    assert [r.id for r in ledger.runs(cid, status="ok")] == [rid] and ledger.runs(cid, status="failed") == []
    ledger.finish_run(rid, status="failed", message="diverged")
    again = ledger.run(rid)
    assert again.status == "failed" and again.message == "diverged" and again.final_metric == 0.7
    with pytest.raises(ValueError):
        ledger.finish_run(rid, status="running")


def test_best_candidates_and_failures(ledger: Ledger) -> None:
    cid = ledger.start_campaign("c", "p", "evolve", CONFIG)
    ids = {}
    for name, score in [("a", 0.5), ("b", 0.9), ("c", 0.1), ("d", 0.9), ("e", None)]:
        ids[name] = add(ledger, cid, name)
        ledger.update_candidate(ids[name], status="ok" if score is not None else "failed", score=score)
    ctrl = add(ledger, cid, "ctrl", arm="control", agent="optuna", scalars={"lr": 1})
    ledger.update_candidate(ctrl, status="ok", score=5.0)
    best = [c.id for c in ledger.best_candidates(cid, "agent", 3)]
    assert best == [ids["b"], ids["d"], ids["a"]]  # ties: the earlier first
    low = [c.id for c in ledger.best_candidates(cid, "agent", 2, higher_is_better=False)]
    assert low == [ids["c"], ids["a"]]
    assert [c.id for c in ledger.best_candidates(cid, "control", 5)] == [ctrl]
    rejected = add(ledger, cid, "f", status="rejected", reasons=["syntax error"])
    assert [c.id for c in ledger.recent_failures(cid, "agent", 5)] == [rejected, ids["e"]]
    assert [c.id for c in ledger.recent_failures(cid, "agent", 1)] == [rejected]


def test_cost_totals(ledger: Ledger) -> None:
    cid = ledger.start_campaign("c", "p", "evolve", CONFIG)
    can = add(ledger, cid, "h")
    ledger.add_cost(
        cid, arm="agent", kind="llm", model="m", prompt_tokens=100, completion_tokens=20, money_usd=0.01
    )
    ledger.add_cost(
        cid, arm="agent", kind="llm", model="m", prompt_tokens=50, completion_tokens=5, money_usd=0.02
    )
    ledger.add_cost(cid, arm="agent", kind="compute", money_usd=0.5, candidate_id=can, meta={"gpu_s": 3})
    ledger.add_cost(cid, arm="control", kind="compute", money_usd=0.25)
    totals = ledger.cost_totals(cid)
    assert set(totals) == {"agent", "control"}
    agent = totals["agent"]
    assert (agent["entries"], agent["llm_calls"], agent["prompt_tokens"], agent["completion_tokens"]) == (
        3,
        2,
        150,
        25,
    )
    assert math.isclose(agent["money_usd"], 0.53) and math.isclose(totals["control"]["money_usd"], 0.25)
    assert totals["control"]["llm_calls"] == 0
    with pytest.raises(ValueError):
        ledger.add_cost(cid, arm="agent", kind="beer")


def test_second_ledger_sees_the_data(tmp_path: Path) -> None:
    first = Ledger.for_campaign_dir(tmp_path)
    cid = first.start_campaign("c", "p", "evolve", CONFIG)
    can = add(first, cid, "h")
    rid = first.start_run(cid, can, "k", 0, "search", "val")
    first.finish_run(rid, status="ok", per_round=[{"round": 0, "auc": 0.8}], final_metric=0.8)
    first.add_cost(cid, arm="agent", kind="llm", prompt_tokens=7)
    first.close()

    second = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    assert second.start_campaign("c", "p", "evolve", CONFIG) == cid
    assert second.candidate(can).ast_hash == "h"
    assert second.run_by_key(cid, "k").final_metric == 0.8  # type: ignore[union-attr]
    assert second.cost_totals(cid)["agent"]["prompt_tokens"] == 7
    assert second.candidate(add(second, cid, "h")).status == "duplicate"
    second.close()


def _add_in_child(ledger: Ledger, cid: int) -> None:
    add(ledger, cid, "from-child")


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
def test_ledger_survives_fork(ledger: Ledger) -> None:
    cid = ledger.start_campaign("c", "p", "evolve", CONFIG)
    add(ledger, cid, "from-parent")  # the parent's pool now holds an open connection
    child = mp.get_context("fork").Process(target=_add_in_child, args=(ledger, cid))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    assert [c.ast_hash for c in ledger.candidates(cid)] == ["from-parent", "from-child"]
