"""Whole campaigns through the CLI on the newer profiles: femnist (LEAF, shipped subset) and ixi (FLamby
imaging, generated fixture) with the smoke budget — the evolve agent, and the local LLM agent against the
scripted OpenAI-compatible server — and the fail-fast message when data and key are both missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from afr.ledger import Ledger
from afr.profiles.ixi import fetch as ixi_prepare
from tests._fake_openai import FakeOpenAI
from tests.imaging_fixtures import write_ixi_raw

REPO = Path(__file__).resolve().parents[1]

SMALL_CAMPAIGN = [
    "budget=smoke",
    "campaign.runs_per_arm=2",
    "campaign.top_k=1",
    "campaign.final_seeds=2",
    "campaign.heldout_seeds=1",
    "tensorboard=false",
]

EDIT = '''Adds server momentum.

```python
from afr.recipe import FedAvg, scalar, weighted_mean_delta
import torch


class Momentum(FedAvg):
    """FedAvg with server momentum."""

    name = "momentum"
    beta = scalar(0.5, 0.0, 0.99)

    def aggregate(self, global_params, updates, server_state):
        delta = weighted_mean_delta(updates)
        velocity = server_state.setdefault("v", {k: torch.zeros_like(v) for k, v in delta.items()})
        for k in velocity:
            velocity[k] = self.beta * velocity[k] + delta[k]
        return {k: global_params[k] + self.server_lr * velocity[k] for k in global_params}
```
'''


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _campaign(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "afr.run", *args, *SMALL_CAMPAIGN, f"campaign.dir={tmp_path / 'c'}"],
        cwd=tmp_path,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _check_finished(directory: Path, name: str, finals: bool = True) -> tuple[Ledger, int]:
    ledger = Ledger.for_campaign_dir(directory)
    campaign = ledger.campaign_by_name(name)
    assert campaign is not None
    runs = ledger.runs(campaign.id)
    arms = [ledger.candidate(r.candidate_id).arm for r in runs if r.stage == "search"]
    assert arms.count("agent") == 2 and arms.count("control") == 2
    assert all(r.status == "ok" for r in runs), [
        (r.id, r.status, r.message) for r in runs if r.status != "ok"
    ]
    if finals:
        finals_runs = [r for r in runs if r.stage == "final"]
        assert finals_runs and all({"test", "heldout"} <= set(r.evaluation or {}) for r in finals_runs)
        assert "survival" in (directory / "report.md").read_text().lower()
    return ledger, campaign.id


def test_femnist_evolve_campaign(tmp_path: Path, shared_data: Path) -> None:
    _campaign(tmp_path, "agent=evolve", "profile=femnist", f"data_dir={shared_data}")
    ledger, campaign_id = _check_finished(tmp_path / "c", "femnist-evolve-seed0")
    runs = ledger.runs(campaign_id)
    # the held-out user groups never train: the final runs' own weights are evaluated on them, no extra runs
    assert not [r for r in runs if r.stage == "heldout"]
    assert all(r.evaluation["heldout"]["per_client"] for r in runs if r.stage == "final")


@pytest.fixture(scope="module")
def ixi_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ixi_data")
    write_ixi_raw(root / "ixi")
    ixi_prepare.prepare(root / "ixi", progress=False)
    return root


def test_ixi_evolve_campaign(tmp_path: Path, ixi_data: Path) -> None:
    _campaign(tmp_path, "agent=evolve", "profile=ixi", f"data_dir={ixi_data}")
    ledger, campaign_id = _check_finished(tmp_path / "c", "ixi-evolve-seed0")
    # the held-out hospital (IOP) is set aside from the search: no search run trained or validated on it
    config = ledger.campaign(campaign_id).config["profile_cfg"]
    assert config["heldout_clients"] == [2]


def test_ixi_local_agent_campaign(tmp_path: Path, ixi_data: Path) -> None:
    with FakeOpenAI([EDIT, EDIT.replace("0.5, 0.0", "0.7, 0.0")]) as server:
        _campaign(
            tmp_path,
            "agent=local",
            "profile=ixi",
            f"data_dir={ixi_data}",
            f"agent.base_url={server.base_url}",
            f"agent.model={server.model}",  # listed by GET /models: the preflight makes no chat call
            "agent.proposals_per_step=1",
            "campaign.finals=false",  # the evolve campaign above covers finals on ixi
        )
        requests = list(server.requests)
    assert requests and "ixi" in json.dumps(requests[0]), "the agent is told which task it works on"
    ledger, campaign_id = _check_finished(tmp_path / "c", "ixi-local-seed0", finals=False)
    agent = ledger.candidates(campaign_id, arm="agent")
    assert [c.status for c in agent][:2] == ["ok", "ok"]
    assert "class Momentum(FedAvg)" in agent[0].source


@pytest.mark.parametrize(
    "profile", ["ixi", "femnist", "kits19", "isic2019", "sent140", "celeba", "reddit", "heart_disease"]
)
def test_claude_without_key_or_data_says_how_to_fix_both(tmp_path: Path, profile: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "afr.run",
            "agent=claude",
            f"profile={profile}",
            f"campaign.dir={tmp_path / 'c'}",
        ],
        cwd=tmp_path,
        env=_env(AFR_DATA_DIR=str(tmp_path / "empty")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ANTHROPIC_API_KEY" in done.stderr and f"afr data fetch {profile}" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "c").exists() and not (tmp_path / "empty").exists(), "nothing started or written"


@pytest.mark.parametrize("name", ["femnist", "shakespeare"])
def test_recipe_run_through_the_cli_on_the_shipped_subsets(
    name: str, shared_data: Path, tmp_path: Path
) -> None:
    """`python -m afr.run profile=<name> recipe=fedavg` (smoke budget) on the real LEAF subsets."""
    from hydra import compose, initialize_config_module

    from afr.profiles import apply_budget, load_profile_config
    from afr.run import train_and_test

    overrides = [f"profile={name}", "budget=smoke", "recipe=fedavg", "seeds=1", f"data_dir={shared_data}"]
    with initialize_config_module(config_module="afr.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    results = train_and_test(cfg, tmp_path)
    smoke = apply_budget(load_profile_config(name), "smoke")
    clients = smoke["grouping"]["clients"]
    assert results["budget"] == {k: smoke[k] for k in ("rounds", "local_steps", "batch_size")}
    (row,) = results["seeds"]
    assert row["steps"] == smoke["rounds"] * clients * smoke["local_steps"]
    assert len(row["test_per_client"]) == clients and 0.0 <= results["mean"] <= 1.0
    assert json.loads((tmp_path / "results.json").read_text())["profile"] == name


def test_command_line_profile_override_beats_the_preset(shared_data: Path, tmp_path: Path) -> None:
    args = ["profile=femnist", "budget=smoke", "profile.rounds=1", "recipe=fedavg", "seeds=1"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "afr.run",
            *args,
            f"data_dir={shared_data}",
            f"hydra.run.dir={tmp_path / 'r'}",
        ],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["budget"] == {"rounds": 1, "local_steps": 2, "batch_size": 10}  # smoke's steps, our rounds
