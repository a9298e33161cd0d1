"""A small deterministic campaign used by the crash/resume test: python tests/_campaign_script.py DIR.

Proposes a fixed list of agent candidates and control trials on synthetic (small budget), runs each
once, and exits. Running it again on the same DIR must resume, not repeat.
"""

from __future__ import annotations

import sys
from pathlib import Path

from afr.budget import ArmBudget
from afr.campaign import CandidateRunner, RunnerSettings
from afr.profiles import load_profile_config, make_profile
from afr.recipe import recipe_source

MOMENTUM = """
from afr.recipe import FedAvg, scalar, weighted_mean_delta
import torch


class Momentum(FedAvg):
    beta = scalar({beta}, 0.0, 0.99)

    def aggregate(self, global_params, updates, server_state):
        delta = weighted_mean_delta(updates)
        velocity = server_state.setdefault("v", {{k: torch.zeros_like(v) for k, v in delta.items()}})
        for k in velocity:
            velocity[k] = self.beta * velocity[k] + delta[k]
        return {{k: global_params[k] + self.server_lr * velocity[k] for k in global_params}}
"""


def main(campaign_dir: str) -> None:
    cfg = load_profile_config("synthetic")
    cfg.update(rounds=12, local_steps=40)
    runner = CandidateRunner(
        campaign_dir,
        name="crash-test",
        profile=make_profile("synthetic", cfg),
        agent="scripted",
        limits={"agent": ArmBudget(10, 10**9), "control": ArmBudget(10, 10**9), "finals": ArmBudget(0, 0)},
        settings=RunnerSettings(workers=1, timeout_s=60),
    )
    with runner:
        for i, beta in enumerate((0.1, 0.3, 0.5, 0.7)):
            agent = runner.propose("agent", "scripted", MOMENTUM.format(beta=beta), proposal_key=f"agent-{i}")
            runner.run(agent, seed=0)
            control = runner.propose(
                "control",
                "optuna",
                recipe=recipe_source("fedavg"),
                proposal_key=f"control-{i}",
                scalars={"lr": 0.005 * (i + 1)},
            )
            runner.run(control, seed=0)
    print("campaign complete", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
    Path(sys.argv[1], "DONE").write_text("ok")
