"""Lazy imports and GPU-safe workers (issue 16), checked on CPU.

* The campaign/CLI entry modules and the training path do not import lightning (or sklearn up front).
* The zygote never initialises CUDA and holds no lightning (its ``ready`` report says so).
* ``CUDA_VISIBLE_DEVICES`` is passed through to the workers, or set per worker slot from ``devices``.
* A CUDA run's memory cap is resident memory (polled by the zygote), not RLIMIT_AS.
* ``profile.autocast=bf16`` runs and is recorded.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from afr.engine import run_federation
from afr.errors import ConfigError
from afr.profiles import load_profile_config, make_profile
from afr.recipe import FedAvg
from afr.sandbox import RunJob, SandboxPool, parse_devices
from afr.sandbox import _pool as sandbox_pool
from afr.sandbox._isolation import MIB, memory_cap_mode
from afr.sandbox._jobs import RunJob as _RunJob
from afr.sandbox._zygote import Zygote, _Child
from tests._config import parsed_settings

ENTRY_MODULES = ("afr", "afr.cli", "afr.run", "afr.campaign", "afr.sandbox", "afr.engine", "afr.evaluate")


def _loaded_after(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; which heavy modules it left in ``sys.modules``."""
    probe = textwrap.dedent(code) + textwrap.dedent(
        """
        import json, sys
        def has(top):
            return any(m == top or m.startswith(top + ".") for m in sys.modules)
        print(json.dumps({k: has(k) for k in ("lightning", "pytorch_lightning", "sklearn", "torch")}))
        """
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_entry_modules_do_not_import_lightning() -> None:
    loaded = _loaded_after("\n".join(f"import {m}" for m in ENTRY_MODULES))
    assert not loaded["lightning"] and not loaded["pytorch_lightning"], loaded


def test_the_training_path_does_not_import_lightning() -> None:
    loaded = _loaded_after(
        """
        from afr.engine import run_federation
        from afr.profiles import make_profile
        from afr.recipe import FedAvg, FedProx
        profile = make_profile("synthetic", rounds=1, local_steps=2, num_clients=3)
        for cls in (FedAvg, FedProx):
            for batched in (True, False):
                run_federation(profile, profile.make_recipe(cls), 0, batched=batched)
        """
    )
    assert loaded["torch"], "the probe did not train"
    assert not loaded["lightning"] and not loaded["pytorch_lightning"], loaded


def test_profiles_import_sklearn_only_when_splitting() -> None:
    assert not _loaded_after("import afr.profiles, afr.campaign")["sklearn"]


# --- the zygote and the workers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cfg() -> dict[str, Any]:
    config = load_profile_config("synthetic")
    config.update(rounds=1, local_steps=2)
    return config


@pytest.fixture(scope="module")
def device_pool() -> Iterator[SandboxPool]:
    """A pool started while the parent has CUDA_VISIBLE_DEVICES=7, with per-worker devices [3, 5]."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUDA_VISIBLE_DEVICES", "7")
        pool = SandboxPool(workers=2, devices=[3, 5])
        pool.warm()
    yield pool
    pool.close()


def _env_probe(cfg: dict[str, Any]) -> RunJob:
    source = (
        "import os\nfrom afr.recipe import FedAvg\n\n\nclass Probe(FedAvg):\n"
        "    def local_steps(self, round_idx, client, max_steps):\n"
        "        raise RuntimeError('CVD=' + str(os.environ.get('CUDA_VISIBLE_DEVICES')) + '|NVML='\n"
        "                           + str(os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK')))\n"
    )
    return RunJob(f"env-{uuid.uuid4().hex[:8]}", "synthetic", cfg, recipe_source=source, timeout_s=60)


def test_zygote_reports_no_cuda_and_no_lightning(device_pool: SandboxPool) -> None:
    info = device_pool.warm()
    assert info["cuda_initialized"] is False
    assert info["lightning_loaded"] is False
    assert info["cuda_visible_devices"] == "7"  # the parent's selection reached the zygote
    assert info["devices"] == ["3", "5"]


def test_worker_gets_its_slots_device(device_pool: SandboxPool, cfg) -> None:
    # Which slot a job lands in depends on whether the previous child has been reaped yet; either way it
    # sees one of the pool's devices, never the parent's 7.
    seen = set()
    for _ in range(3):
        outcome = device_pool.run(_env_probe(cfg))
        assert outcome.status == "failed"
        found = [device for device in ("3", "5") if f"CVD={device}|NVML=1" in outcome.message]
        assert found, outcome.message
        seen.update(found)
    assert seen <= {"3", "5"}


def test_parent_selection_passes_through_without_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    env = sandbox_pool.clean_environment("/nonexistent-home")
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert env["PYTORCH_NVML_BASED_CUDA_CHECK"] == "1"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert "CUDA_VISIBLE_DEVICES" not in sandbox_pool.clean_environment("/nonexistent-home")


def test_free_slots_map_workers_to_devices() -> None:
    zygote = object.__new__(Zygote)  # the slot logic only; no pipes, no signals
    zygote.running = {}
    assert zygote._free_slot() == 0
    zygote.running = {10: _child(10, slot=0)}
    assert zygote._free_slot() == 1
    zygote.running = {11: _child(11, slot=1)}  # slot 0 was freed
    assert zygote._free_slot() == 0


@pytest.mark.parametrize(
    ("given", "expected"), [(None, []), ([0, 1], ["0", "1"]), ("2", ["2"]), (["0, 1", 3], ["0,1", "3"])]
)
def test_parse_devices(given: Any, expected: list[str]) -> None:
    assert parse_devices(given) == expected


@pytest.mark.parametrize("bad", [["gpu0"], [-1], [""], [True]])
def test_parse_devices_refuses_non_indices(bad: Any) -> None:
    with pytest.raises(ValueError, match="CUDA device index"):
        parse_devices(bad)


def test_campaign_devices_setting(tmp_path: Path) -> None:
    def settings(*overrides: str):
        return parsed_settings(tmp_path, *overrides)

    assert settings().runner.devices == ()
    assert settings("campaign.devices=[0,1]").runner.devices == ("0", "1")
    with pytest.raises(ConfigError, match="devices"):
        settings("campaign.devices=[cuda0]")


# --- the memory cap ----------------------------------------------------------------------------------


def test_memory_cap_mode_follows_the_device() -> None:
    assert memory_cap_mode("cpu") == "address_space"
    assert memory_cap_mode("cuda") == "rss"


@pytest.mark.parametrize("mode", ["address_space", "rss"])
def test_set_limits_leaves_the_address_space_open_for_cuda(mode: str) -> None:
    code = textwrap.dedent(
        f"""
        import resource
        from afr.sandbox._isolation import set_limits, vsz_bytes
        from afr.sandbox._jobs import RunJob
        job = RunJob("j", "synthetic", {{}}, recipe_name="fedavg", memory_mb=512)
        set_limits(job, vsz_bytes(), {mode!r})
        print(resource.getrlimit(resource.RLIMIT_AS)[0])
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    limit = int(done.stdout.strip())
    if mode == "rss":
        assert limit == resource.RLIM_INFINITY or limit == resource.getrlimit(resource.RLIMIT_AS)[0]
    else:
        assert limit != resource.RLIM_INFINITY and limit > 512 * MIB


def _child(pid: int, slot: int = 0, rss_limit: int = 0) -> _Child:
    job = _RunJob("j", "synthetic", {}, recipe_name="fedavg", memory_mb=1)
    return _Child(0, job, pid, -1, 0.0, float("inf"), 60.0, slot=slot, rss_limit=rss_limit)


def test_rss_cap_kills_a_child_past_its_resident_budget() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        zygote = object.__new__(Zygote)
        over, under = _child(sleeper.pid, rss_limit=1), _child(os.getpid(), slot=1, rss_limit=1 << 50)
        zygote.running = {sleeper.pid: over, os.getpid(): under}
        zygote._enforce_deadlines()
        assert over.killed == "memory" and over.peak_rss > 1
        assert under.killed is None  # within its budget: left alone (and this test process survives)
        assert sleeper.wait(timeout=60) == -9
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


# --- bf16 autocast -----------------------------------------------------------------------------------


def test_bf16_autocast_runs_and_is_recorded() -> None:
    plain = make_profile("synthetic", rounds=2, local_steps=3, num_clients=3)
    mixed = make_profile("synthetic", rounds=2, local_steps=3, num_clients=3, autocast="bf16")
    assert plain.autocast is None and mixed.autocast == "bf16"
    a = run_federation(plain, plain.make_recipe(FedAvg), 0)
    b = run_federation(mixed, mixed.make_recipe(FedAvg), 0)
    assert b.engine_path == "per-client" and "autocast bf16" in b.engine_note
    assert all(torch.isfinite(v).all() for v in b.state_dict.values())
    assert b.state_dict.keys() == a.state_dict.keys()
    assert all(v.dtype == a.state_dict[k].dtype for k, v in b.state_dict.items())  # weights stay fp32
    # bf16 rounding in the forward pass changes the trajectory: the setting took effect.
    assert any(not torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_autocast_refuses_other_modes() -> None:
    with pytest.raises(ConfigError, match="autocast"):
        make_profile("synthetic", rounds=1, local_steps=1, num_clients=2, autocast="fp8")
