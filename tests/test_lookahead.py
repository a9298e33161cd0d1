"""``campaign.lookahead``: an arm decides its next run while its current one trains, so the sandbox workers
never wait while the parent records a result and proposes; each decision sees the arm's results up to
``lookahead`` runs back — never one that happened to end early — so the ledger does not depend on timing
(the slow-agent test in test_campaign.py and the resume tests in test_interrupt.py/test_racing.py check that
at the default lookahead, 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from afr.campaign import DEFAULT_LOOKAHEAD, Campaign
from afr.errors import ConfigError
from afr.ledger import Ledger
from tests.test_campaign import conf, settings


def _unrecorded(campaign: Campaign, arm: str) -> int:
    """The arm's search runs started and not yet recorded, as the ledger holds them now."""
    runs = campaign.runner.ledger.runs(campaign.runner.campaign_id, stage="search")
    return sum(1 for r in runs if r.run_key.startswith(f"{arm}/") and r.status == "running")


@pytest.mark.parametrize("lookahead", [0, 1, 2])
def test_each_arm_decides_with_exactly_lookahead_runs_in_flight(tmp_path: Path, lookahead: int) -> None:
    directory = tmp_path / "campaign"
    campaign = Campaign(
        settings(
            directory,
            conf("agent", "evolve"),
            runs=5,
            finals=False,
            lookahead=lookahead,
            proposals_per_step=1,
        ),
        echo=lambda _line: None,
    )
    at_decision: dict[str, list[int]] = {"control": [], "agent": []}
    ask, propose = campaign.control.ask, campaign.agent.propose

    def asking():
        at_decision["control"].append(_unrecorded(campaign, "control"))
        return ask()

    def proposing(ctx, n):
        at_decision["agent"].append(_unrecorded(campaign, "agent"))
        return propose(ctx, n)

    campaign.control.ask, campaign.agent.propose = asking, proposing
    result = campaign.run()

    assert not result.failure and result.arms["agent"].runs == result.arms["control"].runs == 5
    for arm, counts in at_decision.items():
        # the arm's first decision in its thread has nothing in flight (before it, the control asks the
        # baseline's trial, run and recorded before the arms start); every later one has exactly
        # `lookahead` of its own runs started and not recorded, once it has started that many
        first = 2 if arm == "control" else 1
        ramp = [min(i + 1, lookahead) for i in range(len(counts) - first)]
        assert counts[:first] == [0] * first and counts[first:] == ramp, (arm, counts)
    ledger = Ledger.for_campaign_dir(directory)
    assert not ledger.candidates(result.campaign_id, status="running"), "every run in flight was recorded"
    assert all(r.status != "running" for r in ledger.runs(result.campaign_id))
    recorded = ledger.campaign(result.campaign_id).config
    assert recorded.get("lookahead") == (lookahead or None), "lookahead 0 keeps the config recorded before"


def test_a_bad_lookahead_is_one_clear_error(tmp_path: Path) -> None:
    from tests._config import parsed_settings

    assert parsed_settings(tmp_path).lookahead == DEFAULT_LOOKAHEAD == 2
    assert parsed_settings(tmp_path, "campaign.lookahead=0").lookahead == 0
    for bad in ("-1", "1.5", "true"):
        with pytest.raises(ConfigError, match="campaign.lookahead must be"):
            parsed_settings(tmp_path, f"campaign.lookahead={bad}")


class _Stop(KeyboardInterrupt):
    """Ctrl-C, raised where the test stops the campaign."""


def test_a_trial_asked_and_never_proposed_is_proposed_first_on_resume(tmp_path: Path) -> None:
    """A stop between the control's ask and its candidate's record leaves a trial asked and unproposed: the
    resumed process proposes it first (read from the study once, at its start), and the campaign ends with the
    ledger an uninterrupted one records."""
    from tests.test_interrupt import content

    def make(folder: Path) -> Campaign:
        return Campaign(
            settings(folder / "campaign", conf("agent", "evolve"), runs=5, finals=False, seed=3),
            echo=lambda _line: None,
        )

    make(tmp_path / "straight").run()
    stopped = make(tmp_path / "stopped")
    real = stopped.runner.propose

    def stop_at_trial_3(*args, proposal_key: str, **kwargs):
        if proposal_key == "control-3":
            raise _Stop
        return real(*args, proposal_key=proposal_key, **kwargs)

    stopped.runner.propose = stop_at_trial_3  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        stopped.run()
    ledger = Ledger.for_campaign_dir(tmp_path / "stopped" / "campaign")
    keys = {c.meta.get("proposal_key") for c in ledger.candidates(1, arm="control")}
    assert "control-2" in keys and "control-3" not in keys
    resumed = make(tmp_path / "stopped")
    assert [t.number for t in resumed.control.pending() if t.number == 3] == [3]
    resumed.run()
    assert content(tmp_path / "stopped") == content(tmp_path / "straight")
