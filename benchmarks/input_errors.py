"""How fast does bad input get its one-line answer? (issue 15: < 3 s on an idle machine)

Each command must exit 2 with one ``error:`` line; the script prints its wall time beside the time of a bare
``python -c pass`` measured in the same run (the interpreter's own start-up), and fails when a command does
not answer as expected or takes more than 3 s.

    python benchmarks/input_errors.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_S = 3.0
COMMANDS = {
    "unknown recipe": ["-m", "afr.run", "profile=synthetic", "recipe=nope"],
    "missing recipe file": ["-m", "afr.run", "profile=synthetic", "recipe=missing_recipe.py"],
}


def _time(args: list[str], cwd: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    return time.perf_counter() - start, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    ok = True
    with tempfile.TemporaryDirectory() as cwd:  # an empty directory: nothing on sys.path shadows a library
        bare = statistics.median(_time(["-c", "pass"], cwd)[0] for _ in range(args.repeat))
        print(f"python -c pass: {bare:.2f} s (median of {args.repeat})")
        for name, command in COMMANDS.items():
            times = []
            for _ in range(args.repeat):
                seconds, done = _time(command, cwd)
                times.append(seconds)
                lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
                if done.returncode != 2 or len(lines) != 1:
                    print(f"FAIL {name}: exit {done.returncode}, stderr:\n{done.stderr[-2000:]}")
                    ok = False
            median = statistics.median(times)
            verdict = "met" if median < TARGET_S else "NOT met"
            print(
                f"{name:<22} {median:5.2f} s median ({median / bare:4.1f}x interpreter start-up; "
                f"{median / TARGET_S:.2f} of the {TARGET_S:g} s target: {verdict})"
            )
            ok = ok and median < TARGET_S
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
