"""How long does the default protocol take? Per profile: the search (the profile's ``campaign_runs`` per arm,
evolve vs the Optuna control), the finals (top 3 agent finalists, the best control trial and the baseline on
the power-sized final seeds the profile's ``verdict`` block and the evaluation settings give) and the held-out
runs, on the default 2 workers.

    .venv/bin/python benchmarks/protocol_time.py [heart_disease synthetic ...] [--femnist] [--shakespeare]
        [--workers 2] [--data-dir DIR]

Without profile names: heart_disease, tcga_brca and synthetic; ``--femnist`` / ``--shakespeare`` add those
with ``budget=cpu``. A profile can also be named ``name:preset`` (``femnist:cpu``). Prints one row per
profile (runs and wall per phase, final and held-out seeds) and the total against the 60-minute target of
issue 16. The evolve agent stands in for an LLM agent (no model calls): the protocol's runs are the same.
Exit 1 if a campaign failed or any of its runs did.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import data_dir_from  # benchmarks/ is on sys.path when run as a script

from afr.campaign import Campaign, CampaignSettings, RunnerSettings
from afr.ledger import Ledger
from afr.profiles import apply_budget, load_profile_config

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 60 * 60
DEFAULT = ["heart_disease", "tcga_brca", "synthetic"]


def time_protocol(profile: str, preset: str | None, workers: int, data_dir: Path) -> dict[str, object]:
    """One default campaign of ``profile``; its phases' wall times and run counts."""
    from omegaconf import OmegaConf

    conf = ROOT / "afr" / "conf"
    agent_cfg = OmegaConf.to_container(OmegaConf.load(conf / "agent" / "evolve.yaml"), resolve=True)
    control_cfg = OmegaConf.to_container(OmegaConf.load(conf / "control" / "optuna.yaml"), resolve=True)
    profile_cfg = apply_budget(load_profile_config(profile), preset)
    runs_per_arm = int(profile_cfg.get("campaign_runs", 24))
    camp = OmegaConf.to_container(OmegaConf.load(conf / "config.yaml"), resolve=False)["campaign"]
    marks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = CampaignSettings(
            name=f"protocol-{profile}",
            directory=Path(tmp) / "campaign",
            profile=profile,
            profile_cfg=profile_cfg,
            agent_cfg=agent_cfg,
            control_cfg=control_cfg,
            runs_per_arm=runs_per_arm,
            data_dir=str(data_dir),
            # The command line's per-run limits (afr/conf/config.yaml), not the library's short test default:
            # a femnist run on the cpu preset takes ~2 min per run here.
            runner=RunnerSettings(
                workers=workers, timeout_s=float(camp["timeout_s"]), memory_mb=int(camp["memory_mb"])
            ),
        )
        marks["start"] = time.perf_counter()
        campaign = Campaign(settings, echo=lambda _line: None)
        run_finals = campaign.run_finals

        def timed_finals() -> None:
            marks["finals_start"] = time.perf_counter()
            run_finals()
            marks["finals_end"] = time.perf_counter()

        campaign.run_finals = timed_finals  # type: ignore[method-assign]
        marks["search_start"] = time.perf_counter()
        result = campaign.run()
        marks["end"] = time.perf_counter()
        runs = Ledger.for_campaign_dir(settings.directory).runs(result.campaign_id)
    finals_start = marks.get("finals_start", marks["end"])
    failed = [r for r in runs if r.status != "ok"]
    return {
        "profile": f"{profile}{f' ({preset})' if preset else ''}",
        "search_runs": sum(r.stage == "search" for r in runs),
        "final_runs": sum(r.stage == "final" for r in runs),
        "heldout_runs": sum(r.stage == "heldout" for r in runs),
        "final_seeds": len(campaign.final_seeds),
        "heldout_seeds": len(campaign.heldout_seeds),
        "setup_s": marks["search_start"] - marks["start"],
        "search_s": finals_start - marks["search_start"],
        "finals_s": marks.get("finals_end", finals_start) - finals_start,
        "total_s": marks["end"] - marks["start"],
        "failure": result.failure or (f"{len(failed)} runs failed: {failed[0].message}" if failed else ""),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("profiles", nargs="*", help=f"default: {' '.join(DEFAULT)}")
    parser.add_argument("--femnist", action="store_true", help="add femnist with budget=cpu")
    parser.add_argument("--shakespeare", action="store_true", help="add shakespeare with budget=cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    names = list(args.profiles or DEFAULT)
    names += [f"{flag}:cpu" for flag in ("femnist", "shakespeare") if getattr(args, flag)]
    data_dir = data_dir_from(args.data_dir)
    print(f"default protocol, {args.workers} workers, load {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    header = (
        f"  {'profile':<22} {'search':>6} {'final':>6} {'heldout':>7} {'seeds':>5} {'h.seeds':>7} "
        f"{'set-up s':>8} {'search s':>8} {'finals s':>8} {'total s':>8}"
    )
    print(header)
    rows, total = [], 0.0
    for name in names:
        profile, _, preset = name.partition(":")
        row = time_protocol(profile, preset or None, args.workers, data_dir)
        rows.append(row)
        total += float(row["total_s"])  # type: ignore[arg-type]
        print(
            f"  {row['profile']:<22} {row['search_runs']:>6} {row['final_runs']:>6} {row['heldout_runs']:>7} "
            f"{row['final_seeds']:>5} {row['heldout_seeds']:>7} {row['setup_s']:>8.1f} "
            f"{row['search_s']:>8.1f} {row['finals_s']:>8.1f} {row['total_s']:>8.1f}",
            flush=True,
        )
        if row["failure"]:
            print(f"    FAILED: {row['failure']}")
    if total >= TARGET_S:
        verdict = "NOT met"
    else:
        verdict = "met" if len(rows) >= 5 else f"not shown ({len(rows)} of the 5 profiles timed)"
    print(
        f"  total {total / 60:.1f} min for {len(rows)} profiles; target < 60 min for heart_disease, "
        f"tcga_brca, synthetic, femnist (cpu) and shakespeare (cpu): {verdict}"
    )
    if any(row["failure"] for row in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
