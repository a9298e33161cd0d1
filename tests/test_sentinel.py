"""No test or held-out byte reaches a sandboxed run (issue 14, done-when 2).

A fixture profile (``tests/sentinel_fixture``) writes a sentinel motif, drawn from a fresh seed, into every
test row and every row of its held-out client. Unvalidated candidates then run straight in the sandbox pool
(as ``tests/adversarial`` does for SANDBOX lines): one allocates uninitialised memory every way torch and
numpy offer, of many sizes (those of the test arrays among them), reads all of it and reports how often it
met the motif; another returns uninitialised memory as its weights. The motif never appears.

The candidates know the motif only as integers: no contiguous copy of it exists in their process unless
one leaked there.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from afr.profiles import load_profile_config, make_profile
from afr.sandbox import RunJob, SandboxPool

FIXTURE = Path(__file__).resolve().parent / "sentinel_fixture"
if str(FIXTURE) not in sys.path:
    sys.path.insert(0, str(FIXTURE))

from sentinel_profile import HIGH, LOW, MOTIF_WORDS, TEST_ROWS, motif, tiled  # noqa: E402

HELD_OUT = 9
SCAN_LIMIT_MIB = 384  # what the scan keeps allocated at once (the child may use 1024 MiB)

# The scan, shared by the candidate (sandboxed) and the detector check (here). ``words`` are the motif's
# int32 bit patterns as Python ints; a hit is MIN_RUN consecutive int32 words that are consecutive
# (cyclically) in the motif: 16 bytes of test data.
SCAN = '''
import numpy as np
import torch

MIN_RUN = 4


def count_hits(t, words, lo, hi):
    flat = t.reshape(-1).view(torch.int32) if t.dtype != torch.int32 else t.reshape(-1)
    if flat.numel() < MIN_RUN:
        return 0
    near = ((flat >= lo) & (flat < hi)).nonzero().reshape(-1)
    if near.numel() < MIN_RUN:
        return 0
    values = flat[near]
    index = torch.full((near.numel(),), -1, dtype=torch.int64)
    for j, w in enumerate(words):
        index[values == w] = j
    keep = index >= 0
    near, index = near[keep], index[keep]
    n = near.numel() - MIN_RUN + 1
    if n <= 0:
        return 0
    run = torch.ones(n, dtype=torch.bool)
    for step in range(1, MIN_RUN):
        run &= near[step : step + n] == near[:n] + step
        run &= index[step : step + n] == (index[:n] + step) % len(words)
    return int(run.sum())


def scan_everything(words, lo, hi, sizes, limit_bytes):
    """Allocate uninitialised memory every way we can, in every size, read it all; (hits, bytes read)."""
    like = torch.zeros(8)
    makers = [
        lambda n: torch.empty(n, dtype=torch.int32),
        lambda n: torch.empty(n, dtype=torch.float32),
        lambda n: torch.empty((n,), dtype=torch.float64)[: max(1, n // 2)],
        lambda n: like.new_empty(n),
        lambda n: like.new_empty((n,), dtype=torch.int32),
        lambda n: torch.empty_like(torch.zeros(1).expand(n)),
        lambda n: torch.empty_strided((n,), (1,)),
        lambda n: torch.Tensor(n),
        lambda n: torch.FloatTensor(n),
        lambda n: torch.from_numpy(np.empty(n, dtype=np.int32)),
        lambda n: torch.from_numpy(np.empty(n, dtype=np.float32)),
        lambda n: torch.from_numpy(np.ndarray((n,), dtype=np.float32)),
        lambda n: torch.tensor([], dtype=torch.uint8).set_(torch.UntypedStorage(4 * n)),
    ]
    hits = read = 0
    for rounds in range(2):  # the second pass meets memory the first one freed
        alive, held = [], 0
        for n in sizes:
            for make in makers:
                t = make(n)
                hits += count_hits(t, words, lo, hi)
                read += t.numel() * t.element_size()
                if held + t.numel() * t.element_size() <= limit_bytes:
                    alive.append(t)  # keep it: the next allocation gets fresh memory
                    held += t.numel() * t.element_size()
        del alive
    return hits, read
'''


def words_of(pattern: torch.Tensor) -> list[int]:
    return [int(w) for w in pattern.view(torch.int32)]


def bit_range() -> tuple[int, int]:
    bounds = torch.tensor([LOW, HIGH], dtype=torch.float32).view(torch.int32)
    return int(bounds[0]), int(bounds[1])


def scan_source(words: list[int], sizes: list[int]) -> str:
    lo, hi = bit_range()
    return (
        SCAN
        + f"""

from afr.recipe import FedAvg

_DONE = []


class Scanner(FedAvg):
    def local_steps(self, round_idx, client, max_steps):
        if not _DONE:
            _DONE.append(scan_everything({words!r}, {lo}, {hi}, {sizes!r}, {SCAN_LIMIT_MIB << 20}))
        hits, read = _DONE[0]
        raise RuntimeError(f"SCAN hits={{hits}} read_mib={{read >> 20}}")


class Returner(FedAvg):
    def aggregate(self, global_params, updates, server_state):
        out = {{}}
        for key, value in global_params.items():
            junk = torch.cat([torch.empty(n).reshape(-1) for n in (value.numel(), 4096, 1 << 16)])
            junk = torch.nan_to_num(junk[: value.numel()], nan=0.0, posinf=0.0, neginf=0.0)
            out[key] = junk.clamp(-1e30, 1e30).reshape(value.shape).to(value.dtype)
        return out
"""
    )


@pytest.fixture(scope="module")
def seed() -> int:
    return uuid.uuid4().int % (1 << 31)


@pytest.fixture(scope="module")
def cfg(seed: int) -> dict[str, Any]:
    config = load_profile_config("synthetic")
    config.update(
        _target_="sentinel_profile.SentinelSynthetic",
        sentinel_seed=seed,
        heldout_clients=[HELD_OUT],
        rounds=2,
        local_steps=3,
    )
    return config


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    sandbox = SandboxPool(workers=2)
    sandbox.warm()
    yield sandbox
    sandbox.close()


def sizes_to_scan(cfg: dict[str, Any]) -> list[int]:
    """Element counts: every test and held-out array's, and powers of two from 4 to 2**24."""
    profile = make_profile("synthetic", cfg)
    exact = {len(c) * cfg["dim"] for c in profile.data("test")}
    exact |= {len(c) * cfg["dim"] for c in profile.heldout_data()}
    exact |= {rows * cfg["dim"] for rows in TEST_ROWS}
    return sorted(exact | {1 << k for k in range(2, 25)})


def job(cfg: dict[str, Any], source: str, class_name: str) -> RunJob:
    return RunJob(
        f"sentinel-{class_name}-{uuid.uuid4().hex[:6]}",
        "synthetic",
        cfg,
        recipe_source=source,
        class_name=class_name,
        timeout_s=300,
        memory_mb=1024,
        import_roots=(str(FIXTURE),),
    )


def test_the_fixture_plants_the_motif_in_test_and_heldout_only(cfg: dict[str, Any], seed: int) -> None:
    profile = make_profile("synthetic", cfg)
    pattern = motif(seed)
    test, held = profile.data("test"), profile.heldout_data()
    assert [len(c) for c in test] == [TEST_ROWS[k % len(TEST_ROWS)] for k in range(len(test))]
    for client in [*test, *held]:
        assert torch.equal(client.inputs.reshape(-1)[:MOTIF_WORDS], pattern)
    lo, hi = bit_range()
    for client in profile.data("train"):
        bits = client.inputs.view(torch.int32)
        assert not ((bits >= lo) & (bits < hi)).any(), "training data must not look like the motif"


def test_the_detector_finds_the_motif() -> None:
    """The scan would see a leak: it counts the motif in memory that holds it, and nothing in zeros."""
    namespace: dict[str, Any] = {}
    exec(compile(SCAN, "<scan>", "exec"), namespace)
    pattern = motif(7)
    words, (lo, hi) = words_of(pattern), bit_range()
    count_hits = namespace["count_hits"]
    planted = torch.zeros(10_000)
    planted[1001 : 1001 + 2 * MOTIF_WORDS] = pattern.repeat(2)
    assert count_hits(planted, words, lo, hi) == 2 * MOTIF_WORDS - 3
    assert count_hits(tiled(pattern, 50, 60), words, lo, hi) == 50 * 60 - 3
    assert count_hits(planted[1001 + 5 : 1001 + 9].clone(), words, lo, hi) == 1  # from mid-motif
    assert count_hits(torch.zeros(10_000), words, lo, hi) == 0
    assert count_hits(pattern[torch.tensor([0, 2, 4, 6, 8])], words, lo, hi) == 0  # not consecutive


def test_uninitialised_memory_never_holds_a_test_or_heldout_row(
    pool: SandboxPool, cfg: dict[str, Any], seed: int
) -> None:
    sizes = sizes_to_scan(cfg)
    outcome = pool.run(job(cfg, scan_source(words_of(motif(seed)), sizes), "Scanner"))
    assert outcome.status == "failed" and "SCAN hits=" in outcome.message, (outcome.status, outcome.message)
    report = outcome.message.split("SCAN ", 1)[1].split()
    hits, read_mib = int(report[0].split("=")[1]), int(report[1].split("=")[1].rstrip("]"))
    assert read_mib >= 2 * SCAN_LIMIT_MIB, f"the scan read only {read_mib} MiB"
    assert hits == 0, f"{hits} runs of the sentinel found in uninitialised memory of a sandboxed run"


def test_returned_weights_of_uninitialised_memory_hold_no_sentinel(
    pool: SandboxPool, cfg: dict[str, Any], seed: int
) -> None:
    outcome = pool.run(job(cfg, scan_source(words_of(motif(seed)), [16]), "Returner"))
    assert outcome.status == "ok", outcome.message
    namespace: dict[str, Any] = {}
    exec(compile(SCAN, "<scan>", "exec"), namespace)
    lo, hi = bit_range()
    words = words_of(motif(seed))
    returned = torch.cat([v.reshape(-1).to(torch.float32) for v in outcome.state_dict.values()])
    assert returned.numel() > 0
    assert namespace["count_hits"](returned, words, lo, hi) == 0
    raw = b"".join(v.contiguous().numpy().tobytes() for v in outcome.state_dict.values())
    chunk = motif(seed).numpy().tobytes()
    assert not any(chunk[i : i + 16] in raw for i in range(0, len(chunk) - 15, 4))
    assert str(seed) not in repr(outcome.curve)


def test_workers_overwrite_freed_memory(pool: SandboxPool) -> None:
    """Defence in depth behind the loader process: glibc overwrites freed heap blocks in every worker."""
    assert pool.warm()["isolation"].get("malloc_perturb") is True


def test_a_profile_the_loader_cannot_load_fails_the_job_only(pool: SandboxPool, cfg: dict[str, Any]) -> None:
    broken = {**cfg, "sentinel_seed": "not a number"}  # the loader process raises; the zygote lives on
    outcome = pool.run(job(broken, scan_source([], [16]), "Returner"))
    assert outcome.status == "failed", outcome.message
    assert "could not load profile" in outcome.message and "ValueError" in outcome.message, outcome.message
    assert pool.run(job(cfg, scan_source([], [16]), "Returner")).status == "ok"
