"""The budget accountant: arithmetic, exhaustion, failures charged, idempotence, resume, and races."""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from afr.budget import ArmBudget, BudgetAccountant, BudgetExhausted, Reservation
from afr.errors import AFRError, ConfigError
from afr.ledger import Ledger, LedgerError

LIMITS = {"agent": ArmBudget(4, 1000), "control": ArmBudget(4, 1000), "finals": ArmBudget(10, 10_000)}


@pytest.fixture()
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.for_campaign_dir(tmp_path)
    yield led
    led.close()


@pytest.fixture()
def campaign(ledger: Ledger) -> int:
    return ledger.start_campaign("c", "heart_disease", "evolve", {"seed": 0})


def test_reserve_settle_arithmetic(ledger: Ledger, campaign: int) -> None:
    acc = BudgetAccountant(ledger, campaign, LIMITS)
    assert acc.reserve("agent", "agent/1", 100) == Reservation("agent/1", "agent", 1, 100)
    acc.reserve("agent", "agent/2", 250)
    acc.reserve("control", "control/1", 300)
    assert acc.reserved("agent") == ArmBudget(2, 350) and acc.spent("agent") == ArmBudget(0, 0)
    assert acc.remaining("agent") == ArmBudget(2, 650)
    acc.settle("agent/1", "ok")
    assert acc.spent("agent") == ArmBudget(1, 100) and acc.reserved("agent") == ArmBudget(1, 250)
    assert acc.remaining("agent") == ArmBudget(2, 650)  # settling moves budget, it does not return it
    assert acc.remaining("control") == ArmBudget(3, 700) and acc.remaining("finals") == ArmBudget(10, 10_000)
    totals = acc.totals()
    assert totals["agent"]["spent_runs"] == 1 and totals["agent"]["reserved_client_steps"] == 250
    assert totals["agent"]["remaining_runs"] == 2 and totals["agent"]["outcomes"] == {"ok": 1}
    assert totals["finals"]["remaining_client_steps"] == 10_000


def test_exhausted_at_the_run_limit(ledger: Ledger, campaign: int) -> None:
    acc = BudgetAccountant(ledger, campaign, {"agent": ArmBudget(3, 10**9)})
    for i in range(3):
        acc.reserve("agent", f"agent/{i}", 1)
    acc.settle("agent/0", "ok")
    with pytest.raises(BudgetExhausted) as err:
        acc.reserve("agent", "agent/3", 1)
    exc = err.value
    assert isinstance(exc, AFRError)
    assert exc.arm == "agent" and exc.limit.runs == 3 and exc.spent.runs == 1 and exc.reserved.runs == 2
    for part in ("agent", "limit 3 runs", "spent 1", "reserved 2"):
        assert part in str(exc)
    assert acc.reserved("agent").runs == 2  # a refused reservation leaves nothing behind


def test_exhausted_at_the_client_step_limit(ledger: Ledger, campaign: int) -> None:
    acc = BudgetAccountant(ledger, campaign, {"control": ArmBudget(100, 100)})
    acc.reserve("control", "control/a", 60)
    with pytest.raises(BudgetExhausted, match="client-steps"):
        acc.reserve("control", "control/b", 41)
    acc.reserve("control", "control/c", 40)  # exactly fills the limit
    assert acc.remaining("control") == ArmBudget(98, 0)
    with pytest.raises(BudgetExhausted):
        acc.reserve("control", "control/d", 1)
    acc.reserve("control", "control/e", 0)


def test_failures_are_charged_like_successes(ledger: Ledger, campaign: int) -> None:
    acc = BudgetAccountant(ledger, campaign, LIMITS)
    for arm in ("agent", "control"):
        for outcome in ("ok", "failed", "timeout", "crashed"):
            acc.reserve(arm, f"{arm}/{outcome}", 200)
            acc.settle(f"{arm}/{outcome}", outcome)
    for arm in ("agent", "control"):
        assert acc.spent(arm) == ArmBudget(4, 800) and acc.remaining(arm) == ArmBudget(0, 200)
        assert acc.totals()[arm]["outcomes"] == {"ok": 1, "failed": 1, "timeout": 1, "crashed": 1}
        with pytest.raises(BudgetExhausted):
            acc.reserve(arm, f"{arm}/more", 1)
    with pytest.raises(ValueError):
        acc.settle("agent/ok", "cancelled")


def test_reserve_is_idempotent_also_after_resume(ledger: Ledger, campaign: int, tmp_path: Path) -> None:
    acc = BudgetAccountant(ledger, campaign, LIMITS)
    first = acc.reserve("agent", "agent/cand-1/search/seed-0", 100)
    assert acc.reserve("agent", "agent/cand-1/search/seed-0", 999) == first  # the stored charge wins
    assert acc.reserved("agent") == ArmBudget(1, 100)
    with pytest.raises(LedgerError, match="charged to the agent arm"):
        acc.reserve("control", "agent/cand-1/search/seed-0", 100)

    # a new process: new ledger object and accountant on the same file
    resumed = BudgetAccountant(Ledger.for_campaign_dir(tmp_path), campaign, LIMITS)
    assert resumed.reserve("agent", "agent/cand-1/search/seed-0", 100) == first
    assert resumed.reserved("agent") == ArmBudget(1, 100) and resumed.totals() == acc.totals()
    resumed.settle("agent/cand-1/search/seed-0", "ok")
    assert resumed.reserve("agent", "agent/cand-1/search/seed-0", 100) == first  # settled: still no charge
    assert acc.spent("agent") == ArmBudget(1, 100) and acc.reserved("agent") == ArmBudget(0, 0)


def test_settle_is_idempotent_and_unknown_keys_raise(ledger: Ledger, campaign: int) -> None:
    acc = BudgetAccountant(ledger, campaign, LIMITS)
    acc.reserve("agent", "agent/1", 10)
    acc.settle("agent/1", "failed")
    acc.settle("agent/1", "failed")
    acc.settle("agent/1", "ok")  # no-op: the first outcome stays
    assert acc.spent("agent") == ArmBudget(1, 10) and acc.totals()["agent"]["outcomes"] == {"failed": 1}
    with pytest.raises(LedgerError, match="no budget reservation"):
        acc.settle("agent/unknown", "ok")
    with pytest.raises(LedgerError):
        acc.cancel("agent/unknown")


def test_cancel(ledger: Ledger, campaign: int) -> None:
    acc = BudgetAccountant(ledger, campaign, {"agent": ArmBudget(1, 100)})
    acc.reserve("agent", "agent/dup", 100)
    acc.cancel("agent/dup")
    acc.cancel("agent/dup")  # no-op
    assert acc.reserved("agent") == ArmBudget(0, 0) and acc.spent("agent") == ArmBudget(0, 0)
    assert acc.pending() == [] and acc.remaining("agent") == ArmBudget(1, 100)
    with pytest.raises(LedgerError, match="cancelled"):
        acc.settle("agent/dup", "ok")
    acc.reserve("agent", "agent/run", 100)  # the freed budget is usable
    acc.settle("agent/run", "ok")
    with pytest.raises(LedgerError, match="already ran"):
        acc.cancel("agent/run")
    assert acc.spent("agent") == ArmBudget(1, 100)


def test_pending_after_a_simulated_crash(ledger: Ledger, campaign: int, tmp_path: Path) -> None:
    acc = BudgetAccountant(ledger, campaign, LIMITS)
    for key in ("agent/1", "agent/2", "control/1", "finals/1"):
        acc.reserve(key.split("/")[0], key, 50)
    acc.settle("agent/1", "ok")
    del acc  # crash: nothing but the database survives
    ledger.close()

    resumed = BudgetAccountant(Ledger.for_campaign_dir(tmp_path), campaign, LIMITS)
    pending = resumed.pending()
    assert [r.run_key for r in pending] == ["agent/2", "control/1", "finals/1"]
    assert pending[0] == Reservation("agent/2", "agent", 1, 50)
    assert [r.run_key for r in resumed.pending("control")] == ["control/1"]
    for r in pending:
        assert resumed.reserve(r.arm, r.run_key, r.client_steps) == r  # re-attaching charges nothing
        resumed.settle(r.run_key, "crashed")
    assert resumed.pending() == [] and resumed.spent("agent") == ArmBudget(2, 100)


def test_rekey_moves_a_slot_to_its_run_once(ledger: Ledger, campaign: int) -> None:
    """A shared campaign's worker moves its budget slot to the run it claimed; if another (slow, judged
    stopped) worker charged that run first, ``unless_charged`` leaves both charges as they are."""
    acc = BudgetAccountant(ledger, campaign, LIMITS)
    acc.reserve("agent", "agent/slot/a", 10)
    assert acc.rekey("agent/slot/a", "agent/cand-1/search/seed-0").run_key == "agent/cand-1/search/seed-0"
    assert not acc.holds("agent/slot/a") and acc.reserved("agent") == ArmBudget(1, 10)
    acc.reserve("agent", "agent/slot/b", 10)
    acc.reserve("agent", "agent/cand-2/search/seed-0", 10)  # the slow worker's charge of the same run
    with pytest.raises(LedgerError, match="already holds a charge"):
        acc.rekey("agent/slot/b", "agent/cand-2/search/seed-0")
    assert acc.rekey("agent/slot/b", "agent/cand-2/search/seed-0", unless_charged=True) is None
    assert acc.holds("agent/slot/b"), "the slot stays this worker's, for its next run"
    assert acc.reserved("agent") == ArmBudget(3, 30), "nothing charged twice, nothing lost"
    # taking over a run that holds its own charge needs no slot at all
    assert acc.rekey("agent/slot/none", "agent/cand-2/search/seed-0", unless_charged=True) is None


def test_config_errors(ledger: Ledger, campaign: int) -> None:
    with pytest.raises(ConfigError, match="unknown budget arm"):
        BudgetAccountant(ledger, campaign, {"baseline": ArmBudget(1, 1)})
    acc = BudgetAccountant(ledger, campaign, {"agent": ArmBudget(1, 1)})
    with pytest.raises(ConfigError, match="no budget is set"):
        acc.reserve("control", "control/1", 1)
    with pytest.raises(ValueError):
        acc.reserve("agent", "agent/1", -1)
    with pytest.raises(LedgerError):
        BudgetAccountant(ledger, campaign + 99, LIMITS)


def test_threads_never_over_reserve(ledger: Ledger, campaign: int) -> None:
    acc = BudgetAccountant(ledger, campaign, {"agent": ArmBudget(50, 10**9)})
    start = threading.Barrier(8)
    granted: list[int] = [0] * 8
    refused: list[int] = [0] * 8

    def worker(t: int) -> None:
        start.wait()
        for i in range(20):
            try:
                acc.reserve("agent", f"agent/t{t}/{i}", 10)
                granted[t] += 1
            except BudgetExhausted:
                refused[t] += 1

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(granted) == 50 and sum(refused) == 160 - 50
    assert acc.reserved("agent") == ArmBudget(50, 500) and len(acc.pending()) == 50


def _reserve_in_process(db_dir: str, campaign: int, name: str, barrier: Any, results: Any) -> None:
    acc = BudgetAccountant(Ledger.for_campaign_dir(db_dir), campaign, {"control": ArmBudget(50, 10**9)})
    barrier.wait()
    granted = 0
    for i in range(40):
        try:
            acc.reserve("control", f"control/{name}/{i}", 7)
            granted += 1
        except BudgetExhausted:
            pass
    results.put((name, granted))


def test_processes_never_over_reserve(ledger: Ledger, campaign: int, tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_reserve_in_process, args=(str(tmp_path), campaign, f"p{n}", barrier, results))
        for n in range(2)
    ]
    for p in procs:
        p.start()
    granted = dict(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(granted.values()) == 50
    acc = BudgetAccountant(ledger, campaign, {"control": ArmBudget(50, 10**9)})
    assert acc.reserved("control") == ArmBudget(50, 350) and len(acc.pending("control")) == 50


def test_a_heartbeat_does_not_queue_behind_the_ledgers_writers(ledger: Ledger, campaign: int) -> None:
    """A shared campaign's worker beats while its arms write: the beat takes neither the process's write
    lock nor the campaign row's, so a busy worker is not judged stopped (its runs taken over under it)."""
    from afr.ledger._ledger import _lock_for

    ledger.join_worker(campaign, "w1")
    before = ledger.live_workers(campaign, 60)
    beat = threading.Thread(target=ledger.heartbeat, args=(campaign, "w1", "left"))
    with _lock_for(ledger._lock_key):  # an arm's write in progress, in another thread of this process
        beat.start()
        beat.join(timeout=60)
        assert not beat.is_alive(), "the heartbeat waited for the write lock"
    assert before == {"w1"} and ledger.live_workers(campaign, 60) == set()  # it said it left
