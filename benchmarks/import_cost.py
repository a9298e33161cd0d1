"""What does importing cost each process? CPU seconds and peak RSS of a fresh interpreter per scenario,
side by side in one run: the training path (``afr.engine._loop``) and the zygote's preload as they are now
and with lightning imported first (what every sandbox process paid while the engine's ``ClientModule`` was
a ``LightningModule``), plus the parent's entry modules.

    .venv/bin/python benchmarks/import_cost.py [--repeats 3]

Each scenario runs ``--repeats`` times in a new interpreter (``python -s``); the median is printed, minus
an empty interpreter's cost. Exits 1 if the training path, the zygote's preload or an entry module loads
lightning on its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

PROBE = """
import json, resource, sys
{code}
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{
    "cpu_s": usage.ru_utime + usage.ru_stime,
    "rss_mb": usage.ru_maxrss / 1024,
    "lightning": any(m == "lightning" or m.startswith("lightning.") for m in sys.modules),
}}))
"""

ZYGOTE_PRELOAD = "from afr.sandbox._zygote import _preload; _preload()"

# (label, code, whether lightning is expected)
SCENARIOS: list[tuple[str, str, bool]] = [
    ("empty interpreter", "pass", False),
    ("import lightning", "import lightning", True),
    ("training path: import afr.engine._loop", "import afr.engine._loop", False),
    ("  ... with lightning first (before)", "import lightning, afr.engine._loop", True),
    ("zygote preload", ZYGOTE_PRELOAD, False),
    ("  ... with lightning first (before)", "import lightning\n" + ZYGOTE_PRELOAD, True),
    ("parent: import afr.campaign", "import afr.campaign", False),
    ("parent: import afr.cli, afr.run", "import afr.cli, afr.run", False),
]


def measure(code: str) -> dict[str, float | bool]:
    done = subprocess.run(
        [sys.executable, "-s", "-c", PROBE.format(code=code)], capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise SystemExit(f"import_cost: scenario failed: {code!r}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh interpreters per scenario (median)")
    args = parser.parse_args()
    if args.repeats < 1:
        print("import_cost: --repeats must be >= 1", file=sys.stderr)
        return 2
    rows = []
    # Interleaved: every repeat runs every scenario once, so a load change hits all of them alike.
    samples: dict[int, list[dict[str, float | bool]]] = {i: [] for i in range(len(SCENARIOS))}
    for _ in range(args.repeats):
        for i, (_, code, _) in enumerate(SCENARIOS):
            samples[i].append(measure(code))
    base_cpu = statistics.median(float(s["cpu_s"]) for s in samples[0])
    base_rss = statistics.median(float(s["rss_mb"]) for s in samples[0])
    failed = []
    print(f"{'scenario':44} {'CPU s':>7} {'RSS MB':>7}  lightning   (minus an empty interpreter)")
    for i, (label, _, expected) in enumerate(SCENARIOS):
        cpu = statistics.median(float(s["cpu_s"]) for s in samples[i]) - (base_cpu if i else 0.0)
        rss = statistics.median(float(s["rss_mb"]) for s in samples[i]) - (base_rss if i else 0.0)
        loaded = any(bool(s["lightning"]) for s in samples[i])
        rows.append((label, cpu, rss))
        print(f"{label:44} {cpu:7.2f} {rss:7.0f}  {'yes' if loaded else 'no':9}")
        if loaded and not expected:
            failed.append(label)
    by_label = {label: (cpu, rss) for label, cpu, rss in rows}
    for now, before in (("training path: import afr.engine._loop", 3), ("zygote preload", 5)):
        cpu_now, rss_now = by_label[now]
        _, cpu_before, rss_before = rows[before]
        print(
            f"{now}: {cpu_now:.2f} s / {rss_now:.0f} MB now vs {cpu_before:.2f} s / {rss_before:.0f} MB "
            f"with lightning ({cpu_before - cpu_now:.2f} s and {rss_before - rss_now:.0f} MB less)"
        )
    if failed:
        print(f"FAIL: lightning loaded by: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
