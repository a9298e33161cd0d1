"""The budget accountant: one per campaign, it charges both arms the same way, failures included.

Units. Every arm (``agent``, ``control``, and ``finals`` for the final/held-out evaluations) has a limit
of **FL runs** and **client-steps** (local optimisation steps summed over all clients and rounds of a
run). A run is charged 1 run and the client-steps its own budget allows, whatever it then uses.

Rules.

* ``reserve`` before a run starts. The charge counts against the arm's limit at once, together with the
  settled charges and every other outstanding reservation; if it does not fit, ``BudgetExhausted``.
* ``settle`` when the run ends. The outcome (ok, failed, timeout, crashed) is recorded but the charge
  stays: a failed or timed-out run costs exactly what a successful one costs, in both arms, so neither
  arm gains by proposing runs that fail fast.
* ``cancel`` only a reservation whose run never started (e.g. a duplicate found after reserving): its
  charge drops to zero and the row stays, with outcome ``cancelled``, for the audit trail.
* Everything is keyed by the run's deterministic ``run_key`` and lives in the ledger's ``afr_charges``
  table, nothing in memory: reserving a key that already holds a charge returns that charge without
  charging again, so a campaign resumed after a crash re-attaches to its runs, and ``pending()`` lists
  the reservations it must re-run or settle.

Concurrency. ``reserve`` is one check-and-insert transaction in ``Ledger.write_session``: a module-level
thread lock per database URL serialises the threads of a process; on SQLite the transaction starts with
``BEGIN IMMEDIATE``, which takes the database's write lock before the budget is read, so reservations of
several processes queue (WAL mode, busy timeout) instead of both reading the same totals; on server
databases the campaign row is locked with ``SELECT ... FOR UPDATE`` for the same effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import AFRError, ConfigError
from .ledger import ACCOUNTS, ChargeRow, Ledger, LedgerError
from .ledger._models import utcnow

__all__ = ["OUTCOMES", "ArmBudget", "BudgetExhausted", "Reservation", "BudgetAccountant"]

OUTCOMES = ("ok", "failed", "timeout", "crashed")
CANCELLED = "cancelled"


@dataclass(frozen=True)
class ArmBudget:
    """An amount of budget: FL runs and client-steps."""

    runs: int
    client_steps: int


class BudgetExhausted(AFRError):
    """An arm's budget cannot cover one more run."""

    def __init__(
        self, what: str, *, arm: str, limit: ArmBudget, spent: ArmBudget, reserved: ArmBudget, **kwargs: Any
    ) -> None:
        self.arm, self.limit, self.spent, self.reserved = arm, limit, spent, reserved
        super().__init__(what, **kwargs)


@dataclass(frozen=True)
class Reservation:
    """The charge held for one run."""

    run_key: str
    arm: str
    runs: int
    client_steps: int


def _reservation(row: ChargeRow) -> Reservation:
    return Reservation(row.run_key, row.arm, row.runs, row.client_steps)


class BudgetAccountant:
    """Charges FL runs of the ``agent``, ``control`` and ``finals`` arms against their limits.

    State lives in the ledger's ``afr_charges`` table: a new accountant on the same ledger and campaign
    sees the same totals. See the module docstring for the units and rules.
    """

    def __init__(self, ledger: Ledger, campaign_id: int, limits: Mapping[str, ArmBudget]) -> None:
        for arm, limit in limits.items():
            if arm not in ACCOUNTS:
                raise ConfigError(
                    f"unknown budget arm {arm!r}", where="budget limits", fix=f"use {', '.join(ACCOUNTS)}"
                )
            if limit.runs < 0 or limit.client_steps < 0:
                raise ConfigError(
                    f"the {arm} budget must not be negative, got {limit}", where="budget limits"
                )
        ledger.campaign(campaign_id)  # fails early on an unknown campaign
        self.ledger, self.campaign_id, self.limits = ledger, campaign_id, dict(limits)

    def _limit(self, arm: str) -> ArmBudget:
        try:
            return self.limits[arm]
        except KeyError:
            raise ConfigError(
                f"no budget is set for the {arm!r} arm",
                where=f"campaign {self.campaign_id} budget",
                fix=f"give a limit for each arm that runs ({', '.join(ACCOUNTS)})",
            ) from None

    def _charge(self, session: Session, run_key: str) -> ChargeRow | None:
        return session.scalars(
            select(ChargeRow).where(ChargeRow.campaign_id == self.campaign_id, ChargeRow.run_key == run_key)
        ).one_or_none()

    def _usage(self, session: Session, arm: str | None = None) -> dict[tuple[str, str], ArmBudget]:
        """(arm, status) -> summed charges."""
        query = select(
            ChargeRow.arm,
            ChargeRow.status,
            func.coalesce(func.sum(ChargeRow.runs), 0),
            func.coalesce(func.sum(ChargeRow.client_steps), 0),
        ).where(ChargeRow.campaign_id == self.campaign_id)
        if arm is not None:
            query = query.where(ChargeRow.arm == arm)
        rows = session.execute(query.group_by(ChargeRow.arm, ChargeRow.status))
        return {(a, s): ArmBudget(int(r), int(c)) for a, s, r, c in rows}

    def _unknown(self, run_key: str) -> LedgerError:
        return LedgerError(
            f"no budget reservation for run {run_key!r}",
            where=f"campaign {self.campaign_id} budget",
            fix="reserve() the run before settling or cancelling it",
        )

    # -- charging ------------------------------------------------------------------------------------

    def reserve(self, arm: str, run_key: str, client_steps: int) -> Reservation:
        """Charge 1 run and ``client_steps`` to ``arm`` before the run starts (idempotent per run_key).

        If ``run_key`` already holds a charge, that charge is returned and nothing more is charged.
        Raises ``BudgetExhausted`` if the arm's limit, counting outstanding reservations, cannot cover it.
        """
        limit = self._limit(arm)
        if isinstance(client_steps, bool) or not isinstance(client_steps, int) or client_steps < 0:
            raise ValueError(f"client_steps must be a non-negative int, got {client_steps!r}")
        with self.ledger.write_session(self.campaign_id) as session:
            row = self._charge(session, run_key)
            if row is not None and row.outcome != CANCELLED:
                if row.arm != arm:
                    raise LedgerError(
                        f"run {run_key!r} is charged to the {row.arm} arm, not {arm}",
                        where=f"campaign {self.campaign_id} budget",
                        fix="run keys must be unique across arms (start them with the arm's name)",
                    )
                return _reservation(row)
            usage = self._usage(session, arm)
            spent = usage.get((arm, "settled"), ArmBudget(0, 0))
            reserved = usage.get((arm, "reserved"), ArmBudget(0, 0))
            if (
                spent.runs + reserved.runs + 1 > limit.runs
                or spent.client_steps + reserved.client_steps + client_steps > limit.client_steps
            ):
                raise BudgetExhausted(
                    f"the {arm} arm's budget cannot cover run {run_key!r} "
                    f"(1 run, {client_steps} client-steps): "
                    f"limit {limit.runs} runs / {limit.client_steps} client-steps, "
                    f"spent {spent.runs} / {spent.client_steps}, reserved {reserved.runs} / "
                    f"{reserved.client_steps}",
                    arm=arm,
                    limit=limit,
                    spent=spent,
                    reserved=reserved,
                    where=f"campaign {self.campaign_id} budget",
                    fix="this is the normal end of the arm's search; raise the arm's budget to run more",
                )
            if row is None:
                row = ChargeRow(campaign_id=self.campaign_id, arm=arm, run_key=run_key)
                session.add(row)
            row.runs, row.client_steps = 1, client_steps
            row.status, row.outcome, row.reserved_at, row.settled_at = "reserved", None, utcnow(), None
            session.flush()
            return _reservation(row)

    def settle(self, run_key: str, outcome: str) -> Reservation:
        """Record the run's outcome; the charge stays whatever the outcome. Settling twice is a no-op."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}; got {outcome!r}")
        with self.ledger.write_session(self.campaign_id) as session:
            row = self._charge(session, run_key)
            if row is None:
                raise self._unknown(run_key)
            if row.outcome == CANCELLED:
                raise LedgerError(
                    f"run {run_key!r} was cancelled, it cannot be settled",
                    where=f"campaign {self.campaign_id} budget",
                    fix="reserve() the run again before running it",
                )
            if row.status == "reserved":
                row.status, row.outcome, row.settled_at = "settled", outcome, utcnow()
            return _reservation(row)

    def cancel(self, run_key: str) -> None:
        """Drop the charge of a reservation whose run never started. Cancelling twice is a no-op."""
        with self.ledger.write_session(self.campaign_id) as session:
            row = self._charge(session, run_key)
            if row is None:
                raise self._unknown(run_key)
            if row.outcome == CANCELLED:
                return
            if row.status == "settled":
                raise LedgerError(
                    f"run {run_key!r} already ran (outcome {row.outcome}); its charge cannot be cancelled",
                    where=f"campaign {self.campaign_id} budget",
                    fix="cancel only reservations whose run never started",
                )
            row.runs, row.client_steps = 0, 0
            row.status, row.outcome, row.settled_at = "settled", CANCELLED, utcnow()

    def rekey(self, old_key: str, new_key: str, *, unless_charged: bool = False) -> Reservation | None:
        """Move the outstanding reservation ``old_key`` (a shared campaign's slot, taken before its candidate
        was proposed) to the run key ``new_key``, in one write: the budget was held throughout, so no other
        worker could take it meanwhile.

        ``unless_charged``: if ``new_key`` already holds a charge (another worker reserved that run first),
        leave both as they are and return None instead of raising — decided in the same write, so no other
        process can charge the run between the check and the move."""
        with self.ledger.write_session(self.campaign_id) as session:
            if unless_charged and self._charge(session, new_key) is not None:
                return None  # the slot need not even be held (a take-over of a run that holds its charge)
            row = self._charge(session, old_key)
            if row is None or row.status != "reserved":
                raise self._unknown(old_key)
            if self._charge(session, new_key) is not None:
                raise LedgerError(
                    f"run {new_key!r} already holds a charge; slot {old_key!r} cannot move to it",
                    where=f"campaign {self.campaign_id} budget",
                    fix="a run key is charged once: reserve the run itself",
                )
            row.run_key = new_key
            session.flush()
            return _reservation(row)

    # -- reading -------------------------------------------------------------------------------------

    def spent(self, arm: str) -> ArmBudget:
        """What the arm's settled runs were charged."""
        with self.ledger.read_session() as session:
            return self._usage(session, arm).get((arm, "settled"), ArmBudget(0, 0))

    def reserved(self, arm: str) -> ArmBudget:
        """What the arm's outstanding (unsettled) reservations hold."""
        with self.ledger.read_session() as session:
            return self._usage(session, arm).get((arm, "reserved"), ArmBudget(0, 0))

    def remaining(self, arm: str) -> ArmBudget:
        """The arm's limit minus spent and reserved (never below zero)."""
        limit = self._limit(arm)
        with self.ledger.read_session() as session:
            usage = self._usage(session, arm)
        used = [usage.get((arm, s), ArmBudget(0, 0)) for s in ("settled", "reserved")]
        return ArmBudget(
            max(0, limit.runs - sum(u.runs for u in used)),
            max(0, limit.client_steps - sum(u.client_steps for u in used)),
        )

    def holds(self, run_key: str) -> bool:
        """Whether ``run_key`` holds a charge (reserved or settled; a cancelled one holds nothing)."""
        with self.ledger.read_session() as session:
            row = self._charge(session, run_key)
            return row is not None and row.outcome != CANCELLED

    def pending(self, arm: str | None = None) -> list[Reservation]:
        """Reservations not yet settled, oldest first: what a resumed campaign must re-run or settle."""
        query = select(ChargeRow).where(
            ChargeRow.campaign_id == self.campaign_id, ChargeRow.status == "reserved"
        )
        if arm is not None:
            query = query.where(ChargeRow.arm == arm)
        with self.ledger.read_session() as session:
            return [_reservation(r) for r in session.scalars(query.order_by(ChargeRow.id))]

    def totals(self) -> dict[str, dict[str, Any]]:
        """Per arm: limit, spent, reserved and remaining runs and client-steps, and runs per outcome."""
        with self.ledger.read_session() as session:
            usage = self._usage(session)
            outcomes = session.execute(
                select(ChargeRow.arm, ChargeRow.outcome, func.count(ChargeRow.id))
                .where(ChargeRow.campaign_id == self.campaign_id, ChargeRow.status == "settled")
                .group_by(ChargeRow.arm, ChargeRow.outcome)
            ).all()
        arms = [a for a in ACCOUNTS if a in self.limits or any(k[0] == a for k in usage)]
        report: dict[str, dict[str, Any]] = {}
        zero = ArmBudget(0, 0)
        for arm in arms:
            limit = self.limits.get(arm, zero)
            spent, reserved = usage.get((arm, "settled"), zero), usage.get((arm, "reserved"), zero)
            used_steps = spent.client_steps + reserved.client_steps
            report[arm] = {
                "limit_runs": limit.runs,
                "limit_client_steps": limit.client_steps,
                "spent_runs": spent.runs,
                "spent_client_steps": spent.client_steps,
                "reserved_runs": reserved.runs,
                "reserved_client_steps": reserved.client_steps,
                "remaining_runs": max(0, limit.runs - spent.runs - reserved.runs),
                "remaining_client_steps": max(0, limit.client_steps - used_steps),
                "outcomes": {o: int(n) for a, o, n in outcomes if a == arm},
            }
        return report
