"""How long does the surface validator take on the worst files within its size caps?

    .venv/bin/python benchmarks/validator_worst_case.py [--repeat 5]

Prints the best of ``--repeat`` times per shape: files just under the node cap (literal-heavy shapes cost
libcst the most per AST node), with and without a violation (positions are computed only for rejected
files), and over-cap or deeply nested files (rejected before libcst). Target: every line < 100 ms on an
idle core. How it is bounded: the byte cap and the node cap are checked on the AST (C parser, iterative
count) before libcst parses anything; nesting is measured as libcst will see it (or-chains and
concatenated strings included) so the recursive walk never goes deeper than the depth cap.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from afr.surface import SurfaceTable, surface_table, validate

HEAD = (
    "from afr.recipe import FedAvg\n\n\nclass C(FedAvg):\n"
    "    def aggregate(self, global_params, updates, server_state):\n"
)
LINE = "        a = max(b, c, d) + min(e, f) * abs(g - h) / (b + 1.5)\n"


def _largest(make: Callable[[int], str], table: SurfaceTable) -> str:
    """``make(k)`` for the largest ``k`` (within 3 %) the node cap still accepts."""
    k = table.max_nodes
    while k > 1 and {"size-nodes", "size-bytes"} & set(validate(make(k), table).rules):
        k = int(k * 0.97)
    return make(k)


def shapes(table: SurfaceTable) -> dict[str, str]:
    setup = "        b = c = d = e = f = g = h = 1.0\n"
    return {
        "code, accepted": _largest(lambda k: HEAD + setup + LINE * (k // 40) + "        return 0\n", table),
        "code, rejected": _largest(
            lambda k: HEAD + setup + LINE * (k // 40) + "        return eval(0)\n", table
        ),
        "tuple literal, rejected": _largest(
            lambda k: HEAD + "        x = (" + ",".join(["1"] * k) + ")\n        return eval(0)\n", table
        ),
        "dict literal, rejected": _largest(
            lambda k: (
                HEAD + "        x = {" + ",".join(f"{i}: 1" for i in range(k)) + "}\n        return eval(0)\n"
            ),
            table,
        ),
        "keywords, rejected": _largest(
            lambda k: HEAD + "        x = f(" + ",".join(["a=1"] * k) + ")\n        return eval(0)\n", table
        ),
        "3000-term flat sum": HEAD + "        return " + "+".join(["1"] * 3000) + "\n",
        "2000-operand or-chain": HEAD + "        return " + " or ".join(["1"] * 2000) + "\n",
        "3000 concatenated strings": HEAD + "        return " + " ".join(['""'] * 3000) + "\n",
        "over the byte cap": HEAD + "        return 0\n" + "#" * 50_000 + "\n",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    table = surface_table("synthetic")
    wrong = []
    for name, source in shapes(table).items():
        best = float("inf")
        for _ in range(args.repeat):
            start = time.perf_counter()
            report = validate(source, table)
            best = min(best, time.perf_counter() - start)
        print(
            f"{name:<28} {len(source.encode()):>7} B  {best * 1000:7.1f} ms  {','.join(report.rules) or 'ok'}"
        )
        # A time is only worth printing for the verdict the shape was built to get.
        if name.endswith(", accepted") and report.rules or name.endswith(", rejected") and not report.rules:
            wrong.append(name)
    if wrong:
        print(f"FAILED: the validator's verdict was not the one the shape was built for: {', '.join(wrong)}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
