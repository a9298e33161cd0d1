"""An LLM agent's endpoint as operations meet it: down at the start, down for a while, hanging under Ctrl-C.

Against the scripted OpenAI-compatible server of ``tests/_fake_openai.py`` on 127.0.0.1; campaigns are tiny
synthetic ones (2 rounds, 2 runs per arm, no finals).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from afr.campaign import Campaign, CampaignSettings, RunnerSettings
from afr.ledger import Ledger
from afr.profiles import load_profile_config
from tests._fake_openai import Delay, FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "afr" / "conf"
TINY = [
    "profile=synthetic",
    "profile.rounds=2",
    "profile.local_steps=5",
    "campaign.runs_per_arm=2",
    "campaign.finals=false",
]

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


def conf(group: str, name: str) -> dict[str, Any]:
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{name}.yaml"), resolve=True)
    assert isinstance(cfg, dict)
    return cfg


def local_agent(server: FakeOpenAI, **over: Any) -> dict[str, Any]:
    cfg = conf("agent", "local")
    cfg.update(
        base_url=server.base_url,
        model=server.model,
        max_retries=0,
        backoff_s=0.0,
        timeout_s=30.0,
        proposals_per_step=1,
        **over,
    )
    return cfg


def settings(directory: Path, agent_cfg: dict[str, Any], **changes: Any) -> CampaignSettings:
    profile_cfg = load_profile_config("synthetic")
    profile_cfg.update(rounds=2, local_steps=5)
    return CampaignSettings(
        name="ops",
        directory=directory,
        profile="synthetic",
        profile_cfg=profile_cfg,
        agent_cfg=agent_cfg,
        control_cfg=conf("control", "optuna"),
        runs_per_arm=2,
        runner=RunnerSettings(workers=2, timeout_s=120),
        finals=False,
        **changes,
    )


def afr_run(cwd: Path, *args: str, **popen: Any) -> Any:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "AFR_DATA_DIR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "afr.run", "agent=local", *TINY, *args, "hydra.run.dir=hydra"]
    if popen:
        return subprocess.Popen(command, cwd=cwd, env=env, text=True, **popen)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def outage_rows(ledger: Ledger) -> list[dict[str, Any]]:
    from sqlalchemy import text

    with ledger.engine.connect() as conn:
        metas = conn.execute(text("SELECT meta FROM afr_costs WHERE arm = 'agent' ORDER BY id")).scalars()
        rows = [m if isinstance(m, dict) else __import__("json").loads(m) for m in metas]
    return [m for m in rows if m.get("outage")]


def test_unreachable_endpoint_stops_the_campaign_before_anything_is_recorded(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        url = server.base_url  # the port is closed once the server stops
    done = afr_run(tmp_path, f"agent.base_url={url}", f"campaign.dir={tmp_path / 'c'}")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert url in lines[0] and "agent.base_url=" in lines[0] and "start the server" in lines[0]
    assert "Traceback" not in done.stdout + done.stderr and "Retrying" not in done.stdout
    assert not (tmp_path / "c").exists(), "no ledger, no charge: the campaign never started"


def test_outage_calls_are_not_fruitless_proposals(tmp_path: Path) -> None:
    """Three calls answered 503 under a fruitless limit of 2: the agent arm goes on, runs what comes next."""
    lines: list[str] = []
    script = [503, 503, 503, GOOD.format(n=1, beta=0.5), GOOD.format(n=2, beta=0.7)]
    with FakeOpenAI(script) as server:
        campaign = Campaign(
            settings(tmp_path / "c", local_agent(server), max_agent_calls=2), echo=lines.append
        )
        result = campaign.run()
        statuses = list(server.statuses)
    assert statuses == [503, 503, 503, 200, 200]
    assert result.stopped_early == "" and not [line for line in lines if "agent arm stopped" in line]
    ledger = Ledger.for_campaign_dir(tmp_path / "c")
    agent = ledger.candidates(result.campaign_id, arm="agent")
    assert [c.status for c in agent] == ["ok", "ok"]
    outages = outage_rows(ledger)
    assert len(outages) == 3 and all("503" in o["outage"] or "scripted" in o["outage"] for o in outages)
    assert ledger.cost_totals(result.campaign_id)["agent"]["completion_tokens"] > 0


def test_a_sustained_outage_stops_the_agent_arm_with_its_reason(tmp_path: Path) -> None:
    lines: list[str] = []
    with FakeOpenAI([503] * 20) as server:
        campaign = Campaign(
            settings(tmp_path / "c", local_agent(server, max_outage_calls=3)), echo=lines.append
        )
        result = campaign.run()
        requests = len(server.requests)
    assert requests == 3, "three calls with no answer, then the arm stops instead of spinning"
    assert server.base_url in result.stopped_early and "3 calls in a row" in result.stopped_early
    assert any(line.startswith("agent arm stopped:") and server.base_url in line for line in lines), lines
    assert len(outage_rows(Ledger.for_campaign_dir(tmp_path / "c"))) == 3
    assert result.arms["control"].runs == 2 and result.arms["agent"].runs == 0
    assert "agent" in result.failure  # an arm with no successful run: the campaign says it failed


def test_unparseable_replies_still_count_as_fruitless(tmp_path: Path) -> None:
    lines: list[str] = []
    with FakeOpenAI(["Only prose, no file."] * 20) as server:
        campaign = Campaign(
            settings(tmp_path / "c", local_agent(server), max_agent_calls=2), echo=lines.append
        )
        result = campaign.run()
        requests = len(server.requests)
    assert result.stopped_early == "2 proposal calls in a row gave nothing runnable"
    assert requests == 4  # each call: the reply and one re-ask with the parse error
    assert outage_rows(Ledger.for_campaign_dir(tmp_path / "c")) == []


BROKEN = """Breaks at run time.

```python
from afr.recipe import FedAvg


class Broken(FedAvg):
    name = "broken"

    def client_lr(self, round_idx, client):
        raise RuntimeError("broken at run time")
```
"""


@pytest.mark.parametrize(
    "before",
    [[], [BROKEN]],
    ids=["in-a-proposal-call", "in-a-run-time-repair-call"],
)
def test_ctrl_c_during_a_hanging_llm_call_exits_130(tmp_path: Path, before: list[str]) -> None:
    """The call that hangs is the first proposal (made in the main thread) or the repair of a candidate that
    failed at run time (made in the agent arm's worker thread, while the main thread waits on it)."""
    arrived = threading.Event()

    def hang(body: dict[str, Any]) -> Any:
        arrived.set()
        return Delay(600)

    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with FakeOpenAI([*before, hang]) as server, out.open("w") as stdout, err.open("w") as stderr:
        proc = afr_run(
            tmp_path,
            f"agent.base_url={server.base_url}",
            f"agent.model={server.model}",
            "agent.timeout_s=600",
            "agent.proposals_per_step=1",
            # the repair of the broken run is then the very next call (with the default lookahead the arm
            # proposes its next candidate while the broken one runs, and repairs it after that)
            *(["campaign.lookahead=0"] if before else []),
            f"campaign.dir={tmp_path / 'c'}",
            stdout=stdout,
            stderr=stderr,
        )
        try:
            # The campaign starts, runs the preflight and the baseline, then the agent's call hangs here.
            assert arrived.wait(300), "the agent's request never reached the server"
            proc.send_signal(signal.SIGINT)
            # A deadlock guard, not a speed assertion: without the fix the call waits out its 600 s.
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        requests = [r["messages"][-1]["content"] for r in server.requests]
    text = err.read_text()
    assert code == 130, out.read_text() + text
    assert len(requests) == len(before) + 1
    assert ("run-time failure" in requests[-1]) == bool(before), "the hanging call is the one meant"
    assert "interrupted" in text and "resume" in text
    assert "Traceback" not in text
    campaign = Ledger.for_campaign_dir(tmp_path / "c").campaign_by_name("synthetic-local-seed0")
    assert campaign is not None and campaign.status == "interrupted"
