"""Campaigns end to end: both arms, one accountant, the ledger, resume, the LLM path, fail-fast keys."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from sqlalchemy import text

from afr.campaign import Campaign, CampaignSettings, RunnerSettings
from afr.ledger import Ledger
from afr.profiles import load_profile_config
from tests._fake_openai import TIMEOUT, FakeOpenAI, Status

CONF = Path(__file__).resolve().parents[1] / "afr" / "conf"


def conf(group: str, name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / group / f"{name}.yaml"), resolve=True)


def settings(directory: Path, agent_cfg: dict, runs: int = 4, **changes) -> CampaignSettings:
    profile_cfg = load_profile_config("synthetic")
    profile_cfg.update(rounds=3, local_steps=10)
    return CampaignSettings(
        name=changes.pop("name", "test"),
        directory=directory,
        profile="synthetic",
        profile_cfg=profile_cfg,
        agent_cfg=agent_cfg,
        control_cfg=conf("control", "optuna"),
        runs_per_arm=runs,
        runner=RunnerSettings(workers=2, timeout_s=60),
        final_seeds=changes.pop("final_seeds", 5),
        heldout_seeds=changes.pop("heldout_seeds", 2),
        **changes,
    )


def spend_by_arm(ledger: Ledger, campaign_id: int) -> dict[str, tuple[int, int]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT arm, SUM(runs), SUM(client_steps) FROM afr_charges "
                "WHERE campaign_id = :c AND status = 'settled' GROUP BY arm"
            ),
            {"c": campaign_id},
        ).all()
    return {arm: (int(runs), int(steps)) for arm, runs, steps in rows}


@pytest.fixture(scope="module")
def evolve_campaign(tmp_path_factory):
    directory = tmp_path_factory.mktemp("evolve") / "campaign"
    result = Campaign(settings(directory, conf("agent", "evolve")), echo=lambda _: None).run()
    return directory, result


def test_both_arms_spend_exactly_the_same_budget(evolve_campaign) -> None:
    directory, result = evolve_campaign
    ledger = Ledger.for_campaign_dir(directory)
    spend = spend_by_arm(ledger, result.campaign_id)
    steps_per_run = 3 * 10 * 10  # rounds × clients × local steps
    assert spend["agent"] == spend["control"] == (4, 4 * steps_per_run)
    runs = ledger.runs(result.campaign_id, stage="search")
    assert sorted(r.run_key.split("/")[0] for r in runs) == ["agent"] * 4 + ["control"] * 4
    assert all(r.seed == 0 and r.stage == "search" for r in runs), "both arms search with the same seed"
    assert ledger.campaign(result.campaign_id).status == "finished"


def test_the_same_command_resumes_without_running_again(evolve_campaign) -> None:
    directory, first = evolve_campaign
    again = Campaign(settings(directory, conf("agent", "evolve")), echo=lambda _: None).run()
    ledger = Ledger.for_campaign_dir(directory)
    assert again.campaign_id == first.campaign_id
    assert len(ledger.runs(first.campaign_id, stage="search")) == 8
    assert len(ledger.runs(first.campaign_id)) == len(ledger.runs(again.campaign_id))
    assert spend_by_arm(ledger, first.campaign_id) == spend_by_arm(ledger, again.campaign_id)


def test_finals_use_fresh_paired_seeds_and_parent_side_metrics(evolve_campaign) -> None:
    directory, result = evolve_campaign
    ledger = Ledger.for_campaign_dir(directory)
    finals = ledger.runs(result.campaign_id, stage="final")
    heldout = ledger.runs(result.campaign_id, stage="heldout")
    assert finals and heldout
    by_candidate: dict[int, set[int]] = {}
    for run in finals:
        by_candidate.setdefault(run.candidate_id, set()).add(run.seed)
        assert run.split == "test" and set(run.evaluation) == {"test"}
        assert 0.0 <= run.evaluation["test"]["mean"] <= 1.0
    assert all(seeds == {42, 43, 44, 45, 46} for seeds in by_candidate.values()), "paired fresh seeds"
    assert len(by_candidate) >= 3  # agent finalists, the best control trial (or the baseline), the baseline
    settings_seen = {r.split for r in heldout}
    assert settings_seen == {"heldout:alpha0.5_beta0.5", "heldout:alpha0_beta0", "heldout:fresh_draw"}
    assert set(result.evidence) and all(len(e["test"]) == 5 for e in result.evidence.values())
    spend = spend_by_arm(ledger, result.campaign_id)
    assert spend["finals"][0] == len(finals) + len(heldout)


def ledger_content(directory: Path, cid: int) -> dict[str, list]:
    """What a campaign's ledger holds, without timestamps, wall times and row ids: the arms search side by
    side, so rows of the two interleave by timing; a candidate is known by its name (number in its arm)."""
    ledger = Ledger.for_campaign_dir(directory)
    names = {c.id: c.name for c in ledger.candidates(cid)}

    def named(key: str) -> str:
        return re.sub(r"cand-(\d+)", lambda m: f"cand-{names[int(m[1])]}", key)

    candidates = sorted(
        (c.name, c.arm, c.source, c.ast_hash, c.scalars, c.status, c.score, c.reasons, c.meta)
        for c in ledger.candidates(cid)
    )
    runs = sorted(
        (named(r.run_key), names[r.candidate_id], r.seed, r.stage, r.split, r.status, r.final_metric,
         r.per_round, r.steps, r.artifacts, r.message, r.evaluation)
        for r in ledger.runs(cid)
    )  # fmt: skip
    with ledger.engine.connect() as conn:
        charges = conn.execute(
            text(
                "SELECT run_key, arm, runs, client_steps, status, outcome FROM afr_charges "
                "WHERE campaign_id = :c ORDER BY run_key"
            ),
            {"c": cid},
        ).all()
    return {
        "candidates": [repr(c) for c in candidates],
        "runs": [repr(r) for r in runs],
        "charges": sorted((named(key), *rest) for key, *rest in charges),
    }


def hold_first_two_finals(runner) -> None:
    """Make the runner's first two final runs wait for each other (a BrokenBarrierError after 300 s if the
    second never starts while the first waits: the finals would be running one at a time)."""
    run, barrier, lock, calls = runner.run, threading.Barrier(2, timeout=300), threading.Lock(), [0]

    def together(candidate, seed, stage="search", **kw):
        with lock:
            calls[0] += stage != "search"
            hold = stage != "search" and calls[0] <= 2
        if hold:
            barrier.wait()
        return run(candidate, seed, stage, **kw)

    runner.run = together


def test_finals_in_parallel_record_and_print_what_finals_one_at_a_time_do(tmp_path: Path) -> None:
    """Two workers train two finals at once (a barrier holds the first two final runs until both are in
    flight: finals one after another would break it), and the ledger and the finals' console lines are those
    of a campaign whose single worker runs them one at a time."""
    outcomes = {}
    for workers in (1, 2):
        base = settings(tmp_path / f"w{workers}", conf("agent", "evolve"), top_k=1, final_seeds=3)
        lines: list[str] = []
        campaign = Campaign(
            dataclasses.replace(base, runner=RunnerSettings(workers=workers, timeout_s=60)), echo=lines.append
        )
        if workers == 2:
            hold_first_two_finals(campaign.runner)
        result = campaign.run()
        assert not result.failure
        content = ledger_content(tmp_path / f"w{workers}", result.campaign_id)
        outcomes[workers] = (content, [x for x in lines if "[ finals]" in x])
    (one, one_lines), (two, two_lines) = outcomes[1], outcomes[2]
    assert sum("/final/" in r for r in two["runs"]) >= 6 and len(two_lines) >= 6
    assert two == one
    assert two_lines == one_lines


def test_a_slow_agent_does_not_hold_the_control_and_the_ledger_does_not_depend_on_timing(
    tmp_path: Path,
) -> None:
    """The agent's first proposal call 'thinks' until the control arm has spent its whole budget: were the
    arms in lockstep, the control would wait for that call and the call for the control (a deadlock, failed
    after 300 s). The ledger then holds exactly what the same seeded campaign holds when the agent is quick:
    same candidates under the same names, same runs, same charges — only their interleaving differs."""
    outcomes = {}
    for slow in (False, True):
        campaign = Campaign(settings(tmp_path / f"slow{slow}", conf("agent", "evolve"), runs=4, finals=False))
        control_spent = threading.Event()
        control_done, propose = campaign._control_done, campaign.agent.propose

        def record_and_signal(
            trial, candidate, record, control_done=control_done, c=campaign, done=control_spent
        ):
            control_done(trial, candidate, record)  # each control run, once recorded
            if not c._remaining("control"):
                done.set()

        def think(ctx, n, propose=propose, done=control_spent):
            assert done.wait(300), "the control arm waited for the agent's proposal call"
            return propose(ctx, n)

        campaign._control_done = record_and_signal
        if slow:
            campaign.agent.propose = think
        result = campaign.run()
        assert not result.failure and result.arms["agent"].runs == result.arms["control"].runs == 4
        ledger = Ledger.for_campaign_dir(tmp_path / f"slow{slow}")
        order = [c.arm for c in ledger.candidates(result.campaign_id)]  # in the order they were recorded
        outcomes[slow] = (ledger_content(tmp_path / f"slow{slow}", result.campaign_id), order)
    (quick, _), (slow, slow_order) = outcomes[False], outcomes[True]
    assert slow_order[:4] == ["control"] * 4, slow_order  # the control went on while the agent thought
    assert slow == quick


def test_both_studies_load_with_the_optuna_api(evolve_campaign) -> None:
    directory, result = evolve_campaign
    url = Ledger.for_campaign_dir(directory).url
    names = set(optuna.study.get_all_study_names(storage=url))
    assert {"test/control", "test/agent"} <= names
    control = optuna.load_study(study_name="test/control", storage=url)
    assert len(control.trials) == 4
    assert all(set(t.params) == {"lr", "server_lr"} for t in control.trials)
    agent = optuna.load_study(study_name="test/agent", storage=url)
    assert len(agent.trials) == 4
    assert all("candidate_id" in t.user_attrs and "diff" in t.user_attrs for t in agent.trials)


GOOD = '''Adds server momentum.

```python
from afr.recipe import FedAvg, scalar, weighted_mean_delta
import torch


class Momentum{n}(FedAvg):
    """FedAvg with server momentum."""

    name = "momentum{n}"
    beta = scalar({beta}, 0.0, 0.99)

    def aggregate(self, global_params, updates, server_state):
        delta = weighted_mean_delta(updates)
        velocity = server_state.setdefault("v", {{k: torch.zeros_like(v) for k, v in delta.items()}})
        for k in velocity:
            velocity[k] = self.beta * velocity[k] + delta[k]
        return {{k: global_params[k] + self.server_lr * velocity[k] for k in global_params}}
```
'''
BAD = """Reads the environment.

```python
import os
from afr.recipe import FedAvg


class Leaky(FedAvg):
    name = "leaky"

    def client_lr(self, round_idx, client):
        return float(os.environ.get("LR", "0.01"))
```
"""


def test_local_agent_through_the_openai_client_matches_the_script(tmp_path: Path) -> None:
    script = [
        GOOD.format(n=1, beta=0.5),  # step 0: a good edit
        "I would rather describe the idea in prose.",  # step 1: malformed -> the agent re-asks
        BAD,  # ... and gets a file the validator rejects -> the campaign asks for a repair
        GOOD.format(n=2, beta=0.7),  # the repaired file
        Status(429),  # step 2: rate limited, then a timeout, then a good reply
        TIMEOUT,
        GOOD.format(n=3, beta=0.3),
    ]
    agent_cfg = conf("agent", "local")
    with FakeOpenAI(script) as server:
        agent_cfg.update(  # the served model: the preflight's GET /models settles it, no chat call
            base_url=server.base_url,
            model=server.model,
            timeout_s=1.0,
            max_retries=2,
            backoff_s=0.0,
            proposals_per_step=1,
        )
        campaign = Campaign(
            settings(tmp_path / "c", agent_cfg, runs=3, name="llm", finals=False), echo=lambda _: None
        )
        result = campaign.run()
        requests = list(server.requests)
    assert len(requests) == len(script)
    ledger = Ledger.for_campaign_dir(tmp_path / "c")
    agent = ledger.candidates(result.campaign_id, arm="agent")
    statuses = [(c.meta["proposal_key"], c.status) for c in agent]
    assert statuses == [
        ("agent-0-0", "ok"),
        ("agent-1-0", "rejected"),
        ("agent-1-0/repair-1", "ok"),
        ("agent-2-0", "ok"),
    ]
    rejected, repaired = agent[1], agent[2]
    assert any("import-not-allowed" in r for r in rejected.reasons)
    assert repaired.parent_id == rejected.id
    repair_request = requests[3]["messages"][-1]["content"]
    assert "[import-not-allowed]" in repair_request, "the validator's message is fed back verbatim"
    assert spend_by_arm(ledger, result.campaign_id) == {"agent": (3, 900), "control": (3, 900)}
    costs = ledger.cost_totals(result.campaign_id)["agent"]
    assert costs["llm_calls"] == 5  # every answered request: 3 good files, the prose, the rejected file


def test_claude_without_a_key_fails_before_any_work(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "afr.run",
            "agent=claude",
            "profile=synthetic",
            f"campaign.dir={tmp_path / 'c'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "ANTHROPIC_API_KEY" in done.stderr.splitlines()[0]
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "c").exists(), "nothing was started"


def test_cli_campaign_runs_and_resumes(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "afr.run",
        "agent=evolve",
        "profile=synthetic",
        "profile.rounds=2",
        "profile.local_steps=5",
        "campaign.runs_per_arm=2",
        "campaign.finals=false",
        f"campaign.dir={tmp_path / 'c'}",
    ]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "finished" in first.stdout and "optuna-dashboard" in first.stdout
    second = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "[  agent] run" not in second.stdout, "a finished campaign runs nothing again"


def test_report_is_written_from_the_ledger(evolve_campaign, tmp_path: Path) -> None:
    directory, result = evolve_campaign
    report = directory / "report.md"
    assert report.is_file(), "a campaign writes its report when it ends"
    text_ = report.read_text()
    for section in (
        "## Budget",
        "## Finalists",
        "## Classification of the agent's gains",
        "## Survival table",
    ):
        assert section in text_
    for plot in ("search_scores", "finalist_curves", "paired_seeds", "budget_spend"):
        assert (directory / "plots" / f"{plot}.png").stat().st_size > 1000
    again = subprocess.run(
        [sys.executable, "-m", "afr.report", str(directory), "--output", str(tmp_path / "r.md")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "r.md").read_text() == text_, "the report is a function of the ledger"
    missing = subprocess.run(
        [sys.executable, "-m", "afr.report", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert missing.returncode == 2 and "no ledger.db" in missing.stderr
