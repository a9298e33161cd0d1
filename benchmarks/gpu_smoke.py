"""Do the imaging profiles run end to end on a GPU? An ixi and an isic2019 smoke campaign (``budget=smoke``,
evolve agent vs the Optuna control) on CUDA, through the sandbox (workers forked from a zygote that never
initialised CUDA, each worker with its own ``CUDA_VISIBLE_DEVICES``, resident-memory cap).

    .venv/bin/python benchmarks/gpu_smoke.py [--profiles ixi isic2019] [--devices 0 1] [--runs-per-arm 2]
        [--autocast bf16] [--finals] [--data-dir DIR]

Needs the prepared data (``afr data fetch ixi|isic2019``). Exit codes: 0 every campaign finished; 1 one
failed; 77 no CUDA device here: nothing was run (not a success). The check for a GPU asks NVML and does
not initialise CUDA in this process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_GPU_EXIT = 77  # the automake/ctest convention for "skipped"


def gpu_count() -> int:
    """CUDA devices visible here, asked through NVML (this process never initialises CUDA)."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=["ixi", "isic2019"])
    parser.add_argument("--devices", nargs="+", type=int, help="campaign.devices (default: all visible)")
    parser.add_argument("--runs-per-arm", type=int, default=2)
    parser.add_argument("--autocast", choices=["off", "bf16"], default="off")
    parser.add_argument("--finals", action="store_true", help="also run the finals (slower)")
    parser.add_argument("--data-dir", help="data root (default: $AFR_DATA_DIR, else the user cache dir)")
    args = parser.parse_args()
    count = gpu_count()
    if count == 0:
        print(
            "gpu_smoke: no GPU: not run (torch.cuda.is_available() is False; ixi and isic2019 smoke "
            f"campaigns need CUDA). Exit {NO_GPU_EXIT}."
        )
        return NO_GPU_EXIT
    devices = args.devices if args.devices is not None else list(range(count))
    failed = []
    with tempfile.TemporaryDirectory(prefix="afr-gpu-smoke-") as tmp:
        for profile in args.profiles:
            overrides = [
                "agent=evolve",
                f"profile={profile}",
                "budget=smoke",
                "device=cuda",
                f"campaign.devices=[{','.join(str(d) for d in devices)}]",
                f"campaign.workers={max(1, len(devices))}",
                f"campaign.runs_per_arm={args.runs_per_arm}",
                f"campaign.finals={str(args.finals).lower()}",
                f"campaign.dir={Path(tmp) / profile}",
                f"profile.autocast={args.autocast}",
            ]
            if args.data_dir:
                overrides.append(f"data_dir={args.data_dir}")
            start = time.perf_counter()
            command = [sys.executable, "-m", "afr.run", *overrides]
            done = subprocess.run(command, capture_output=True, text=True)
            wall = time.perf_counter() - start
            status = "ok" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
            print(f"{profile:10} devices={devices} autocast={args.autocast}: {status} in {wall:.0f} s")
            if done.returncode != 0:
                failed.append(profile)
                print("  " + "\n  ".join((done.stdout + done.stderr).strip().splitlines()[-15:]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
