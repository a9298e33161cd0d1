"""Seed racing (``campaign.racing``): successive halving over search seeds, the same rule for both arms.

One small racing campaign (synthetic profile, evolve agent) is checked from its ledger: each arm's runs stay
within its budget and equal the accountant's charges; every promotion follows the rule, recomputed run by
run from the arm's own earlier runs; promoted candidates climb the search seeds in rung order; no search
seed is a final or held-out seed; finalists rank by mean minus one standard error, then rung; the report
shows their rung history.
A campaign stopped during a promotion run resumes to exactly the ledger of an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest

from afr.budget import BudgetAccountant
from afr.campaign import DEFAULT_LOOKAHEAD, Campaign
from afr.errors import ConfigError
from afr.evaluation import (
    PENDING_KEY,
    RacingSettings,
    RungHistory,
    collect_findings,
    next_promotion,
    race_order,
    rung_histories,
    seed_spread,
    select_finalists,
)
from afr.ledger import BASELINE_KEY, Ledger
from tests.test_campaign import conf, settings
from tests.test_interrupt import content

RACING = RacingSettings(eta=2, rungs=3)
SEEDS = [0, 1, 2]  # the synthetic profile's seeds.search


def racing_settings(directory: Path, **changes):
    return settings(
        directory,
        conf("agent", "evolve"),
        runs=changes.pop("runs", 10),
        racing=changes.pop("racing", RACING),
        top_k=1,
        final_seeds=2,
        heldout_seeds=1,
        seed=3,
        **changes,
    )


@pytest.fixture(scope="module")
def raced(tmp_path_factory):
    directory = tmp_path_factory.mktemp("raced") / "campaign"
    lines: list[str] = []
    result = Campaign(racing_settings(directory), echo=lines.append).run()
    return directory, result, lines


def history(
    h: tuple[int, ...], scores: tuple[float, ...], cid: int, tried: tuple[int, ...] = ()
) -> RungHistory:
    return RungHistory(cid, f"x#{cid}", h, scores, frozenset(h + tried))


# --- the rule, on its own -----------------------------------------------------------------------------


def test_the_rule_promotes_the_best_fraction_highest_rung_first_and_never_retries() -> None:
    hs = {1: history((0,), (0.5,), 1), 2: history((0,), (0.9,), 2), 3: history((0,), (0.7,), 3)}
    # 3 at rung 0, eta 2: the top floor(3/2) = 1, the best (#2), goes to seed 1
    assert next_promotion(hs, SEEDS, 2, True) == (2, 1)
    assert next_promotion(hs, SEEDS, 2, False) == (1, 1)  # lower is better: #1
    assert next_promotion(hs, SEEDS, 3, True) == (2, 1)
    assert next_promotion(hs, SEEDS, 4, True) is None  # floor(3/4) = 0: propose a new candidate
    # #2 tried seed 1 and failed there: it stays at rung 0 and is not promoted again
    hs[2] = history((0,), (0.9,), 2, tried=(1,))
    assert next_promotion(hs, SEEDS, 2, True) is None
    # two at rung 1: the higher rung first, by mean over seeds 0 and 1
    hs[2] = history((0, 1), (0.9, 0.1), 2)
    hs[3] = history((0, 1), (0.7, 0.6), 3)
    hs[4] = history((0,), (0.95,), 4)
    assert next_promotion(hs, SEEDS, 2, True) == (3, 2)  # mean 0.65 beats 0.5
    # ties by candidate id; a candidate at the last rung is never promoted further
    assert next_promotion({5: history((0,), (0.3,), 5), 6: history((0,), (0.3,), 6)}, SEEDS, 2, True) == (
        5,
        1,
    )
    assert next_promotion({5: history((0, 1, 2), (1, 1, 1), 5)}, SEEDS, 2, True) is None


def test_finalists_rank_by_mean_one_standard_error_towards_worse() -> None:
    hs = {
        1: history((0,), (0.99,), 1),
        2: history((0, 1), (0.6, 0.7), 2),
        3: history((0, 1), (0.8, 0.7), 3),
        4: history((), (), 4, tried=(0,)),  # failed its first run: not ranked
    }
    assert seed_spread(hs.values()) == pytest.approx(0.0707, abs=1e-4)
    # 0.99 - 0.0707 > 0.75 - 0.0707 / sqrt(2) > 0.65 - 0.0707 / sqrt(2): far ahead on one seed still leads
    assert race_order(hs, True) == [1, 3, 2]
    assert race_order(hs, False) == [2, 3, 1]
    assert hs[3].line() == "rung 1: seeds 0, 1: 0.8000, 0.7000; mean 0.7500 ± 0.0707"
    # An early candidate that climbed every rung does not outrank a better later one with fewer seeds
    # (the control's trial 0 used to win its arm that way) ...
    early = {1: history((0, 1, 2), (0.82, 0.83, 0.81), 1), 7: history((0, 1), (0.87, 0.86), 7)}
    assert race_order(early, True) == [7, 1]
    # ... and a seed that is a hair luckier than a mean four seeds agree on ranks below it.
    agreed = {2: history((0, 1, 2, 3), (0.80, 0.80, 0.79, 0.81), 2), 9: history((0,), (0.801,), 9)}
    assert race_order(agreed, True) == [2, 9]
    assert seed_spread([agreed[9]]) == 0.0  # no candidate with two seeds: the plain mean decides


def test_bad_racing_settings_are_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="campaign.racing.eta must be an integer >= 2"):
        RacingSettings(eta=1)
    assert RacingSettings.from_config({"enabled": False, "eta": 3}) is None
    assert RacingSettings.from_config({"enabled": True, "eta": 4, "rungs": 2}) == RacingSettings(4, 2)


def test_search_seeds_that_reach_the_final_seeds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="overlap the final seeds"):
        Campaign(racing_settings(tmp_path / "c", racing=RacingSettings(eta=2, rungs=43)), echo=lambda _: None)
    assert not (tmp_path / "c" / "ledger.db").exists()


# --- a racing campaign, from its ledger ---------------------------------------------------------------


def test_each_arm_stays_within_its_budget_and_the_accountant_agrees(raced) -> None:
    directory, result, _ = raced
    ledger = Ledger.for_campaign_dir(directory)
    runs = ledger.runs(result.campaign_id, stage="search")
    totals = BudgetAccountant(ledger, result.campaign_id, {}).totals()
    for arm in ("agent", "control"):
        mine = [r for r in runs if r.run_key.startswith(f"{arm}/")]
        assert len(mine) == totals[arm]["spent_runs"] <= 10
        assert len({r.run_key for r in mine}) == len(mine), "no run twice"
    assert ledger.campaign(result.campaign_id).status == "finished"


def decided_with(mine: list, k: int, baseline_id: int, lookahead: int) -> list:
    """The arm's search runs as the arm knew them when it decided its run ``k``: with ``campaign.lookahead``
    L, runs ``k - L`` to ``k - 1`` started and not ended, unless one is the baseline's run (recorded before
    the arms start), the earlier ones recorded."""
    in_flight = {i for i in range(max(0, k - lookahead), k) if mine[i].candidate_id != baseline_id}
    return [
        dataclasses.replace(run, status="running", final_metric=None) if i in in_flight else run
        for i, run in enumerate(mine[:k])
    ]


def test_promotions_follow_the_rule_run_by_run_for_both_arms(raced) -> None:
    directory, result, _ = raced
    ledger = Ledger.for_campaign_dir(directory)
    promotions = {}
    baseline = next(
        c for c in ledger.candidates(result.campaign_id) if c.meta["proposal_key"] == BASELINE_KEY
    )
    lookahead = ledger.campaign(result.campaign_id).config.get("lookahead", 0)
    assert lookahead == DEFAULT_LOOKAHEAD, "the racing campaign runs at the default lookahead"
    for arm in ("agent", "control"):
        candidates = ledger.candidates(result.campaign_id, arm=arm)
        mine = [r for r in ledger.runs(result.campaign_id, stage="search") if r.run_key.startswith(f"{arm}/")]
        mine.sort(key=lambda r: r.id)
        promotions[arm] = 0
        for k, run in enumerate(mine):
            # replay the decision: an arm decides run k while its `lookahead` latest runs are in flight
            # (started, no result yet), its earlier runs recorded; the baseline's run, before the arms
            # start, is recorded before anything is decided
            known = decided_with(mine, k, baseline.id, lookahead)
            due = next_promotion(rung_histories(candidates, known, SEEDS), SEEDS, RACING.eta, True)
            if due is None:
                assert run.seed == SEEDS[0], f"{run.run_key}: a new candidate starts on the first search seed"
                assert all(r.candidate_id != run.candidate_id for r in mine[:k]), run.run_key
            else:
                assert (run.candidate_id, run.seed) == due, f"{run.run_key}: the rule wanted {due}"
                promotions[arm] += 1
        assert promotions[arm] >= 1, f"the {arm} arm was never raced: {[r.run_key for r in mine]}"
    assert any(r.seed == SEEDS[2] for r in ledger.runs(result.campaign_id, stage="search")), "rung 2 reached"


def test_promoted_candidates_climb_distinct_search_seeds_in_rung_order(raced) -> None:
    directory, result, _ = raced
    ledger = Ledger.for_campaign_dir(directory)
    runs = ledger.runs(result.campaign_id)
    finals = {r.seed for r in runs if r.stage in ("final", "heldout")}
    assert finals and not finals & set(SEEDS), "search seeds are never final or held-out seeds"
    by_candidate: dict[int, list] = {}
    for r in sorted((r for r in runs if r.stage == "search"), key=lambda r: r.id):
        by_candidate.setdefault(r.candidate_id, []).append(r.seed)
    for seeds in by_candidate.values():
        assert seeds == SEEDS[: len(seeds)], f"rung order: {seeds}"
    for c in ledger.candidates(result.campaign_id):
        assert PENDING_KEY not in c.meta, "no promotion is left pending"
        if c.status == "ok":  # a promotion keeps the first seed's score
            first = next(r for r in runs if r.candidate_id == c.id and r.stage == "search")
            assert c.score == first.final_metric


def test_finalists_are_the_race_order_and_the_report_shows_their_rungs(raced) -> None:
    directory, result, lines = raced
    ledger = Ledger.for_campaign_dir(directory)
    finalists = select_finalists(ledger, result.campaign_id, 1, True, racing_seeds=SEEDS)
    runs = ledger.runs(result.campaign_id, stage="search")
    for role in ("agent", "control"):
        picked = [f for f in finalists if f.role == role]
        if not picked:
            continue  # the control's best may be the baseline itself
        hs = rung_histories(ledger.candidates(result.campaign_id, arm=role), runs, SEEDS)
        best = picked[0].candidate.id
        assert best == race_order(hs, True)[0]
        # the cautious estimate: no candidate's mean one standard error towards worse is above the finalist's
        spread = seed_spread(hs.values())
        cautious = {k: h.mean() - spread / math.sqrt(len(h.scores)) for k, h in hs.items() if h.rung >= 0}
        assert all(cautious[best] >= v for v in cautious.values())
    # the finals ran exactly these finalists
    finalled = {r.candidate_id for r in ledger.runs(result.campaign_id, stage="final")}
    assert finalled == {f.candidate.id for f in finalists}
    findings = collect_findings(directory)
    assert findings.racing_seeds == SEEDS
    report = (directory / "report.md").read_text()
    assert "## Seed racing" in report
    for f in finalists:
        h = findings.racing[f.name]
        assert f"- {f.name}: {h.line()}" in report
        assert math.isclose(h.mean(), sum(h.scores) / len(h.scores))
    assert any("rung 1 (seed 1)" in line for line in lines), "promotion runs are named on the console"


def test_a_promoted_control_trial_keeps_its_value_and_carries_its_rungs(raced) -> None:
    import optuna

    directory, result, _ = raced
    ledger = Ledger.for_campaign_dir(directory)
    study = optuna.load_study(study_name="test/control", storage=ledger.url)
    hs = rung_histories(
        ledger.candidates(result.campaign_id, arm="control"),
        ledger.runs(result.campaign_id, stage="search"),
        SEEDS,
    )
    promoted = {h.name: h for h in hs.values() if h.rung >= 1}
    assert promoted
    for trial in study.trials:
        h = promoted.get(trial.user_attrs.get("candidate"))
        rungs = study.user_attrs.get(f"afr_racing/{trial.number}")
        if h is None:
            assert rungs is None
            continue
        assert trial.value == h.scores[0], "the sampler's value is the first seed's"
        assert rungs == {"seeds": list(h.seeds), "scores": list(h.scores), "mean": h.mean()}


def test_racing_is_off_by_default_and_set_from_the_command_line(tmp_path: Path) -> None:
    from tests._config import parsed_settings

    def parsed(*overrides: str):
        return parsed_settings(tmp_path, *overrides)

    default = parsed()
    assert default.racing is None and "racing" not in default.as_config(), "a campaign's config as before"
    on = parsed("campaign.racing.enabled=true", "campaign.racing.eta=4")
    assert on.racing == RacingSettings(eta=4, rungs=3)  # rungs: the default schedule's
    assert on.as_config()["racing"] == {"eta": 4, "rungs": 3}
    with pytest.raises(ConfigError, match="rungs must be an integer >= 2"):
        parsed("campaign.racing.enabled=true", "campaign.racing.rungs=1")


# --- resume -------------------------------------------------------------------------------------------


class Stop(KeyboardInterrupt):
    """Ctrl-C, raised in an arm thread as a promotion run starts."""


def stopped_at_first_promotion(directory: Path, arm: str) -> None:
    """Run (or resume) the racing campaign until the first promotion run of ``arm`` that is not a re-run
    of an interrupted step: it raises Ctrl-C in its arm thread instead of running."""
    campaign = Campaign(racing_settings(directory), echo=lambda _: None)
    real = campaign.runner.start
    # The promotions interrupted earlier, by (candidate, seed): re-run, not stopped at. Not every candidate
    # in flight: one whose first run was in flight at the earlier stop may be promoted later, and that
    # promotion is new (which candidates were in flight then depends on the other arm's timing).
    resumed = {
        (c.id, int(c.meta[PENDING_KEY]))
        for a in ("control", "agent")
        for c in campaign._in_flight(a)
        if c.meta.get(PENDING_KEY) is not None
    }

    def stop(candidate, seed: int, *args, promotion: bool = False, **kwargs):
        if promotion and candidate.arm == arm and (candidate.id, seed) not in resumed:
            raise Stop  # marked running as a promotion, not started
        return real(candidate, seed, *args, promotion=promotion, **kwargs)

    campaign.runner.start = stop
    with pytest.raises(KeyboardInterrupt):
        campaign.run()
    ledger = Ledger.for_campaign_dir(directory)
    pending = [c for c in ledger.candidates(1, arm=arm) if c.meta.get(PENDING_KEY) is not None]
    # the promotion it stopped at, and any the arm had in flight (campaign.lookahead) from an earlier stop
    new = [c for c in pending if (c.id, int(c.meta[PENDING_KEY])) not in resumed]
    assert len(new) == 1 and all(c.status == "running" for c in pending), (
        "the promotion is recorded as pending"
    )
    assert ledger.campaign(1).status == "interrupted"
    # Resumed in the order the arm scheduled them: the promotion last, after the newer candidate whose first
    # run was in flight (campaign.lookahead) — not by candidate id, which puts the promoted, older one first.
    flying = campaign._in_flight(arm)
    assert [c.id for c in flying][-1] == new[0].id and {c.id for c in pending} <= {c.id for c in flying}, [
        c.name for c in flying
    ]


def test_a_campaign_stopped_during_promotions_resumes_to_the_uninterrupted_ledger(raced, tmp_path) -> None:
    directory, _, _ = raced
    folder = tmp_path / "stopped"
    stopped_at_first_promotion(folder / "campaign", "control")
    stopped_at_first_promotion(folder / "campaign", "agent")  # the control's promotion is re-run first
    lines: list[str] = []
    Campaign(racing_settings(folder / "campaign"), echo=lines.append).run()
    assert content(folder) == content(directory.parent)
    for arm in ("agent", "control"):  # every line of the resumed search is a run charged once, none again
        counts = [int(m[1]) for m in (re.match(rf"\[\s*{arm}\] run\s+(\d+)/", line) for line in lines) if m]
        assert counts == sorted(set(counts)), f"{arm}: {counts}"
