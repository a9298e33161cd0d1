"""campaign.executor=ray: a RayPool runs jobs as the local sandbox does (same metrics for the same job and
seed), in each node's own sandbox (its refusals and limits hold), and a campaign on a two-node cluster
survives one node removed mid-run: every run recorded and charged once, both arms at their budget.

Skipped without Ray (``pip install 'afr[ray]'``, ~240 MB; the test extra has it)."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from sqlalchemy import text

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'afr[ray]')")

import afr.campaign._loop as campaign_loop  # noqa: E402
from afr.campaign import Campaign, CampaignSettings, RunnerSettings  # noqa: E402
from afr.errors import ConfigError  # noqa: E402
from afr.ledger import Ledger  # noqa: E402
from afr.profiles import load_profile_config  # noqa: E402
from afr.sandbox import RayPool, RunJob, SandboxClosed, SandboxPool, check_ray_address  # noqa: E402
from afr.sandbox._ray import node_slots, slot_devices  # noqa: E402
from tests._config import parsed_settings  # noqa: E402
from tests.test_sandbox import alive  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "afr" / "conf"


def synthetic_cfg(rounds: int = 2, local_steps: int = 5) -> dict[str, Any]:
    config = load_profile_config("synthetic")
    config.update(rounds=rounds, local_steps=local_steps)
    return config


def job(cfg: dict[str, Any], source: str | None = None, **kw: Any) -> RunJob:
    kw.setdefault("recipe_name", None if source is not None else "fedavg")
    kw.setdefault("timeout_s", 60.0)
    kw.setdefault("memory_mb", 1024)
    return RunJob(f"job-{uuid.uuid4().hex[:8]}", "synthetic", cfg, recipe_source=source, **kw)


def hostile(body: str) -> str:
    """A recipe whose ``local_steps`` runs ``body`` first (the validator is bypassed on purpose)."""
    return (
        "import os\nimport sys\nimport torch\nfrom afr.recipe import FedAvg\n\n\n"
        "class Hostile(FedAvg):\n"
        "    def local_steps(self, round_idx, client, max_steps):\n"
        + textwrap.indent(textwrap.dedent(body).strip(), " " * 8)
        + "\n        return max_steps\n"
    )


def wait_until(predicate, timeout: float = 60.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# --- the pieces that need no cluster ------------------------------------------------------------------


def test_gpu_slots_per_node_and_their_devices() -> None:
    assert node_slots({"CPU": 8.0}, workers=4, num_gpus=0) == 4
    assert node_slots({"CPU": 1.0}, workers=4, num_gpus=0) == 1
    assert node_slots({"CPU": 8.0, "GPU": 2.0}, workers=8, num_gpus=1) == 2
    assert node_slots({"CPU": 8.0, "GPU": 2.0}, workers=8, num_gpus=0.5) == 4
    assert node_slots({"CPU": 8.0}, workers=8, num_gpus=1) == 0  # no GPU: no run there
    assert slot_devices([3, 5], 2, 1) == ["3", "5"]
    assert slot_devices([3, 5, 6, 7], 2, 2) == ["3,5", "6,7"]
    assert slot_devices([4], 2, 0.5) == ["4", "4"]


def composed(tmp_path: Path, *overrides: str) -> CampaignSettings:
    """The campaign settings ``python -m afr.run agent=evolve <overrides>`` would build."""
    return parsed_settings(tmp_path, *overrides)


def test_bad_executor_settings_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="executor must be 'local' or 'ray'"):
        RunnerSettings(executor="dask")
    with pytest.raises(ValueError, match="devices is for executor=local"):
        RunnerSettings(executor="ray", devices=("0",))
    with pytest.raises(ValueError, match="num_gpus and ray_address are for executor=ray"):
        RunnerSettings(num_gpus=1)
    with pytest.raises(ValueError, match="whole number"):
        RunnerSettings(executor="ray", num_gpus=1.5)
    for overrides, expected in (
        (["campaign.executor=ray", "campaign.num_gpus=-1"], "num_gpus must be 0, a fraction"),
        (["campaign.executor=slurm"], "executor must be 'local' or 'ray'"),
        (["campaign.devices=[0]", "campaign.executor=ray"], "devices is for executor=local"),
    ):
        with pytest.raises(ConfigError, match=expected) as caught:
            composed(tmp_path, *overrides)
        assert "campaign.workers/timeout_s/memory_mb/devices/executor/ray_address/num_gpus" in str(
            caught.value
        )


def test_the_default_keeps_the_local_executor_and_the_config_hash(tmp_path: Path) -> None:
    plain = RunnerSettings()
    assert (plain.executor, plain.ray_address, plain.num_gpus) == ("local", None, 0.0)
    local = composed(tmp_path)
    on_ray = composed(tmp_path, "campaign.executor=ray", "campaign.ray_address=auto", "campaign.num_gpus=0.5")
    assert local.runner == RunnerSettings(workers=2, timeout_s=600, memory_mb=4096)
    assert (on_ray.runner.executor, on_ray.runner.ray_address, on_ray.runner.num_gpus) == ("ray", "auto", 0.5)
    assert local.as_config() == on_ray.as_config()  # where runs execute is not what the campaign is


def test_executor_ray_without_ray_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    with pytest.raises(ConfigError, match="needs Ray, which is not installed") as caught:
        composed(tmp_path, "campaign.executor=ray")
    assert "pip install 'afr[ray]'" in str(caught.value)
    with pytest.raises(ConfigError, match="needs Ray"):
        RayPool(workers=1)


def test_a_cluster_address_nothing_answers_at_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfigError, match="no Ray cluster answers at '127.0.0.1:") as caught:
        composed(tmp_path / "c", "campaign.executor=ray", f"campaign.ray_address=127.0.0.1:{port}")
    assert "campaign.ray_address" in str(caught.value)
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        check_ray_address("head-node")
    check_ray_address(None)  # a local Ray: nothing to probe
    assert not (tmp_path / "c").exists()  # refused before any folder is made


def test_no_address_starts_a_new_local_ray_not_another_cluster_here(monkeypatch: pytest.MonkeyPatch) -> None:
    # without an address ray.init() joins the latest cluster started on this machine; "local" never does
    asked: dict[str, Any] = {}

    def init(**kwargs: Any) -> None:
        asked.update(kwargs)
        raise ConnectionError("not started in this test")

    monkeypatch.setattr(ray, "init", init)
    with pytest.raises(ConfigError):
        RayPool(workers=1)
    assert asked["address"] == "local"
    with pytest.raises(ConfigError):
        RayPool(workers=1, address="auto")
    assert asked["address"] == "auto"


# --- a local Ray instance (ray.init()) ----------------------------------------------------------------


@pytest.fixture(scope="class")
def local_ray_pool() -> Iterator[RayPool]:
    """A pool on a local Ray instance, for one class: closed (and Ray shut down) before the cluster test."""
    assert not ray.is_initialized()
    sandbox = RayPool(workers=2)  # address None: starts a local Ray, shut down by close()
    sandbox.warm()
    yield sandbox
    pids = sandbox.zygote_pids
    sandbox.close()
    assert not ray.is_initialized()
    assert wait_until(lambda: not any(alive(pid) for pid in pids), timeout=30)


class TestLocalRay:
    @pytest.fixture
    def pool(self, local_ray_pool: RayPool) -> RayPool:
        return local_ray_pool

    def test_same_job_same_metrics_as_the_local_sandbox(self, pool: RayPool) -> None:
        cfg = synthetic_cfg()
        on_ray = pool.map([job(cfg, seed=3), job(cfg, seed=4)])
        with SandboxPool(workers=1) as local_pool:
            local = local_pool.run(job(cfg, seed=3))
        assert on_ray[0].status == local.status == "ok", (on_ray[0].message, local.message)
        assert on_ray[0].curve == local.curve
        assert on_ray[0].state_dict.keys() == local.state_dict.keys()
        assert all(torch.equal(on_ray[0].state_dict[k], local.state_dict[k]) for k in local.state_dict)
        assert (on_ray[0].bytes_up, on_ray[0].steps_per_client) == (local.bytes_up, local.steps_per_client)
        assert on_ray[1].status == "ok" and on_ray[1].curve != on_ray[0].curve  # another seed: another run
        assert 0 < on_ray[0].seconds < on_ray[0].wall_s

    def test_the_nodes_sandbox_refuses_and_limits_as_locally(self, pool: RayPool, tmp_path: Path) -> None:
        with SandboxPool(workers=1) as local_pool:  # the node's sandbox seals itself as a local one does
            assert pool.warm()["isolation"] == local_pool.warm()["isolation"]
        target = tmp_path / "escaped.txt"
        cfg = synthetic_cfg()
        write, bomb, env, after = pool.map(
            [
                job(cfg, hostile(f"open({str(target)!r}, 'w').write('x')")),
                job(cfg, hostile("torch.zeros(10**11)"), memory_mb=1024),
                # The Ray worker's own environment (RAY_*, its HOME) must not reach the child.
                job(
                    cfg,
                    hostile(
                        "leaked = [k for k in os.environ if k.startswith('RAY')]\n"
                        f"if leaked or os.environ['HOME'] == {os.environ.get('HOME', '')!r}:\n"
                        "    raise RuntimeError(f'leaked: {leaked}')"
                    ),
                ),
                job(cfg),
            ]
        )
        assert write.status == "failed" and "PermissionError" in write.message, write.message
        assert not target.exists()
        assert bomb.status == "memory", (bomb.status, bomb.message)
        assert env.status == "ok", env.message
        assert after.status == "ok"

    def test_a_cluster_without_the_gpus_asked_for_is_one_line(self, pool: RayPool) -> None:
        if ray.cluster_resources().get("GPU"):
            pytest.skip("this machine has GPUs")
        with pytest.raises(ConfigError, match="no node of the Ray cluster can take a run") as caught:
            RayPool(workers=1, num_gpus=1)
        assert "0 GPU" in str(caught.value) and "campaign.num_gpus" in str(caught.value)
        assert ray.is_initialized()  # the session was not this pool's to stop


def test_each_run_sees_the_gpus_ray_gave_its_slot() -> None:
    """GPU plumbing without a GPU: Ray is told the node has 2 (it does not check), each run asks for 1; each
    worker slot's children see their own device in CUDA_VISIBLE_DEVICES (they train on the CPU here)."""
    assert not ray.is_initialized()
    # address="local": a new instance, never a cluster still listed in /tmp/ray (a test before this one)
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pool = RayPool(workers=2, num_gpus=1)
        try:
            info = pool.warm()
            assert sorted(info["devices"]) == ["0", "1"] and info["slots"] == 2
            report = hostile("raise RuntimeError('CVD=' + os.environ.get('CUDA_VISIBLE_DEVICES', '-') + '=')")
            seen = pool.map([job(synthetic_cfg(), report) for _ in range(4)])
        finally:
            pool.close()
        values = {r.message.split("CVD=")[1].split("=")[0] for r in seen if "CVD=" in r.message}
        assert len(seen) == 4 and all(r.status == "failed" for r in seen), [r.message for r in seen]
        assert values and values <= {"0", "1"}, values
        assert ray.is_initialized()  # joined, not owned: left running
    finally:
        ray.shutdown()


# --- a two-node cluster, one node removed mid-campaign ----------------------------------------------


def ray_campaign(directory: Path, runs: int, address: str) -> CampaignSettings:
    profile_cfg = load_profile_config("synthetic")
    # Runs of a second or two: long enough to be caught on the node that is removed.
    profile_cfg.update(rounds=100, local_steps=200)
    return CampaignSettings(
        name="ray",
        directory=directory,
        profile="synthetic",
        profile_cfg=profile_cfg,
        agent_cfg=OmegaConf.to_container(OmegaConf.load(CONF / "agent" / "evolve.yaml"), resolve=True),
        control_cfg=OmegaConf.to_container(OmegaConf.load(CONF / "control" / "optuna.yaml"), resolve=True),
        runs_per_arm=runs,
        runner=RunnerSettings(workers=2, timeout_s=120, executor="ray", ray_address=address),
        finals=False,
    )


def test_a_campaign_survives_a_node_removed_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        doomed = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        pools: list[RayPool] = []
        real_make_pool = campaign_loop.make_pool

        def capture(settings: RunnerSettings):
            made = real_make_pool(settings)
            pools.append(made)
            return made

        monkeypatch.setattr(campaign_loop, "make_pool", capture)
        removed: dict[str, Any] = {}

        def remove_mid_run() -> None:
            # Once the pool has both nodes and a search run is on the doomed one, remove that node.
            def caught() -> bool:
                if not pools or pools[0].closed:
                    return False
                on_doomed = [
                    job_id
                    for job_id, node in pools[0].in_flight().items()
                    if node == doomed.node_id and not job_id.startswith("preflight")
                ]
                if on_doomed:
                    removed["jobs"] = on_doomed
                    removed["zygote"] = pools[0].warm()["nodes"][doomed.node_id]["pid"]
                return bool(on_doomed)

            if wait_until(caught, timeout=600, step=0.01):
                cluster.remove_node(doomed, allow_graceful=False)
                removed["done"] = True

        remover = threading.Thread(target=remove_mid_run, daemon=True)
        remover.start()
        runs = 4
        result = Campaign(
            ray_campaign(tmp_path / "campaign", runs, cluster.address), echo=lambda _: None
        ).run()
        remover.join(timeout=30)

        assert removed.get("done"), "no search run was ever in flight on the second node"
        pool = pools[0]
        assert pool.requeued >= 1, "the run on the removed node was not sent again"
        assert pool.nodes()[doomed.node_id]["dead"]
        # Its zygote and children went with it (stdin EOF when the node's actor died).
        assert wait_until(lambda: not alive(removed["zygote"]), timeout=60)

        ledger = Ledger.for_campaign_dir(tmp_path / "campaign")
        cid = result.campaign_id
        assert ledger.campaign(cid).status == "finished"
        search = ledger.runs(cid, stage="search")
        keys = [r.run_key for r in search]
        assert len(keys) == len(set(keys)) == 2 * runs, keys
        assert sorted(k.split("/")[0] for k in keys) == ["agent"] * runs + ["control"] * runs
        assert set(removed["jobs"]) <= set(keys)
        assert all(r.status in ("ok", "failed") for r in search), [(r.status, r.message) for r in search]
        assert not any("Ray nodes were lost" in (r.message or "") for r in search)
        with ledger.engine.connect() as conn:
            charges = conn.execute(
                text("SELECT arm, run_key, runs, status FROM afr_charges WHERE campaign_id = :c"), {"c": cid}
            ).all()
            recorded = conn.execute(
                text("SELECT run_key, COUNT(*) FROM afr_runs WHERE campaign_id = :c GROUP BY run_key"),
                {"c": cid},
            ).all()
        assert all(count == 1 for _, count in recorded)
        assert sorted(key for _, key, _, _ in charges) == sorted(keys)  # one charge per run, no other
        assert all(n == 1 and status == "settled" for _, _, n, status in charges)
        per_arm = {arm: sum(n for a, _, n, _ in charges if a == arm) for arm in ("agent", "control")}
        assert per_arm == {"agent": runs, "control": runs}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def test_with_no_node_left_a_run_ends_unrun_not_with_a_status() -> None:
    """The only node that can run anything is removed while it runs a job, and none comes back: the job ends
    SandboxClosed (no outcome: a campaign keeps it reserved and re-runs it), never a recorded status."""
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the head takes no runs
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        pool = RayPool(workers=1, address=cluster.address, node_wait_s=1.0)
        try:
            pool.warm()
            future = pool.submit(job(synthetic_cfg(rounds=100, local_steps=200)))
            assert wait_until(lambda: bool(pool.in_flight()), timeout=60, step=0.01)
            cluster.remove_node(worker, allow_graceful=False)
            with pytest.raises(SandboxClosed, match="no Ray node could take a run"):
                future.result(timeout=300)
            assert pool.requeued == 1 and pool.nodes()[worker.node_id]["dead"]
        finally:
            pool.close()
        assert not ray.is_initialized()  # the pool started this session: close() ends it
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
