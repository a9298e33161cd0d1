"""How fast is a campaign? A 48 + 48 run campaign (evolve vs the Optuna control) on heart_disease.

    .venv/bin/python benchmarks/campaign_speed.py [--runs-per-arm 48] [--data-dir DIR]

Prints wall time of the search phase, runs/s per arm and the overhead share (wall time not spent
training inside the sandbox, with two workers). Target: the search phase in < 5 min on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import data_dir_from  # benchmarks/ is on sys.path when run as a script

from afr.campaign import Campaign, CampaignSettings, RunnerSettings
from afr.ledger import Ledger
from afr.profiles import load_profile_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs-per-arm", type=int, default=48)
    parser.add_argument("--profile", default="heart_disease")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    from omegaconf import OmegaConf

    conf = ROOT / "afr" / "conf"
    agent_cfg = OmegaConf.to_container(OmegaConf.load(conf / "agent" / "evolve.yaml"), resolve=True)
    control_cfg = OmegaConf.to_container(OmegaConf.load(conf / "control" / "optuna.yaml"), resolve=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = CampaignSettings(
            name="speed",
            directory=Path(tmp) / "campaign",
            profile=args.profile,
            profile_cfg=load_profile_config(args.profile),
            agent_cfg=agent_cfg,
            control_cfg=control_cfg,
            runs_per_arm=args.runs_per_arm,
            data_dir=str(data_dir_from(args.data_dir)),
            runner=RunnerSettings(workers=2),
        )
        start = time.perf_counter()
        campaign = Campaign(settings, echo=lambda _line: None)
        setup = time.perf_counter() - start
        result = campaign.run()
        wall = time.perf_counter() - start
        ledger = Ledger.for_campaign_dir(settings.directory)
        runs = ledger.runs(result.campaign_id)
        inside = sum(r.runtime_s or 0.0 for r in runs)
    print(f"{args.profile}: {args.runs_per_arm} + {args.runs_per_arm} runs (evolve vs optuna), 2 workers")
    print(f"  wall time (incl. {setup:.1f}s set-up and sandbox start) {wall:8.1f} s")
    for arm, status in result.arms.items():
        print(f"  {arm:<8} {status.runs:>3} runs  {status.runs / wall:6.3f} runs/s  best val {status.best}")
    print(f"  sum of per-run wall times in the sandbox: {inside:.1f} s over 2 workers")
    print(
        f"  overhead share: {max(0.0, 1 - inside / 2 / wall):.1%} of the 2-worker capacity not spent in runs"
    )
    failed = [r for r in runs if r.status != "ok"]
    if result.failure or failed:
        # A campaign whose runs fail is fast for the wrong reason: no timing target is met by it.
        print(f"  FAILED: {len(failed)} of {len(runs)} runs failed; {result.failure or failed[0].message}")
        raise SystemExit(1)
    print(f"  target: search phase < 300 s on 2 cores: {'met' if wall < 300 else 'NOT met'}")


if __name__ == "__main__":
    main()
