"""``afr export flower``: a candidate exported to Flower reproduces AFR's run of it.

A stub campaign (the Ledger API) holds three candidates on a small heart_disease budget: the shipped FedAvg as
a control trial with its own scalars, the shipped SCAFFOLD (broadcast and client extras, client and server
state) and an agent-written file that overrides every hook (model variant, seeded partial participation,
per-client steps and learning rate, a proximal local objective, FedAdam's server step). Each is exported,
then run through Flower's server loop (``flwr.server.Server``) with the export's strategy and clients, and
compared with AFR's engine on the same seed, rounds and stage.

Tolerance: against AFR's per-client path the export is *bit-identical* (same initial model, selection
generator, batch streams, client-round seeds and SGD arithmetic): asserted with ``torch.equal``. Against the
batched path (what ``afr run`` uses by default) AFR itself only promises agreement to float rounding, so the
weights must agree to 1e-5 and the final metric to within the profile's verdict margin (0.02 accuracy: one
patient of the smallest center), the smallest difference AFR's verdicts resolve.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from afr.engine import run_federation
from afr.ledger import Ledger
from afr.profiles import make_profile
from afr.recipe import recipe_class, recipe_source

pytest.importorskip("flwr")

REPO = Path(__file__).resolve().parents[1]
SEED = 42
BUDGET = {"rounds": 3, "local_steps": 8}

AGENT_RECIPE = '''"""Every hook overridden: what an agent's candidate may look like."""

import torch

from afr.recipe import FedAdam, proximal_term, scalar


class Everything(FedAdam):
    name = "everything"

    mu = scalar(0.05, 1e-4, 1.0, log=True)

    def model_variant(self):
        return "mlp"

    def select_clients(self, round_idx, num_clients, rng):
        order = torch.randperm(num_clients, generator=rng).tolist()
        return order[: num_clients - 1]

    def local_steps(self, round_idx, client, max_steps):
        return max_steps - (client + round_idx) % 3

    def client_lr(self, round_idx, client):
        return self.lr * (0.8**round_idx)

    def local_objective(self, task_loss, model, ctx):
        return task_loss + self.mu / 2 * proximal_term(model, ctx.global_params)
'''


@pytest.fixture(scope="module")
def profile(shared_data: Path):
    return make_profile("heart_disease", data_dir=shared_data, **BUDGET)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory, profile) -> tuple[Path, dict[str, str]]:
    """A campaign directory whose ledger holds the three candidates; their names by role."""
    folder = tmp_path_factory.mktemp("campaign")
    with Ledger.for_campaign_dir(folder) as ledger:
        cid = ledger.start_campaign("flower", profile.name, "stub", {"profile_cfg": dict(profile.cfg)})

        def add(arm: str, source: str, scalars: dict | None, meta: dict) -> str:
            new = ledger.add_candidate(
                cid, arm=arm, agent="stub", source=source, diff="", ast_hash=f"h{len(meta)}{arm}{scalars}",
                scalars=scalars, status="ok", meta=meta,
            )  # fmt: skip
            return ledger.candidate(new).name

        fedavg_meta = {"proposal_key": "control-3", "builtin": "fedavg"}
        scaffold_meta = {"proposal_key": "control-4", "builtin": "scaffold"}
        names = {
            "fedavg": add("control", recipe_source("fedavg").text, {"lr": 0.02}, fedavg_meta),
            "scaffold": add("control", recipe_source("scaffold").text, None, scaffold_meta),
            "agent": add("agent", AGENT_RECIPE, None, {"class_name": "Everything"}),
        }
        ledger.add_candidate(
            cid, arm="agent", agent="stub", source="import os\n", diff="", ast_hash="bad", status="rejected"
        )
    return folder, names


def _afr_recipe(tmp_path: Path, profile, role: str):
    if role == "agent":
        path = tmp_path / "everything.py"
        path.write_text(AGENT_RECIPE, encoding="utf-8")
        return profile.make_recipe(recipe_class(str(path)))
    return profile.make_recipe(recipe_class(role), {"lr": 0.02} if role == "fedavg" else {})


def _flower_app(folder: Path):
    """The export's own ``flower_app`` package (the copy in the folder, not afr's)."""
    for name in [m for m in sys.modules if m == "flower_app" or m.startswith("flower_app.")]:
        del sys.modules[name]
    sys.path.insert(0, str(folder))
    try:
        from flower_app import simulation, task

        assert Path(simulation.__file__).resolve().parent == (folder / "flower_app").resolve()
        return simulation, task
    finally:
        sys.path.remove(str(folder))


@pytest.mark.parametrize("role", ["fedavg", "scaffold", "agent"])
def test_flower_export_reproduces_afr(
    role: str, campaign, profile, shared_data: Path, tmp_path: Path
) -> None:
    from afr.export import export_flower

    folder, names = campaign
    out = export_flower(folder, names[role], tmp_path / "export")
    spec = json.loads((out / "export.json").read_text())
    assert spec["candidate"] == names[role] and spec["seed"] == SEED and spec["stage"] == "final"

    simulation, task_module = _flower_app(out)
    task = task_module.load_task(out, data_dir=shared_data)
    strategy = simulation.run_inprocess(task, SEED)
    result = simulation.summary(strategy)
    flower_weights = {k: v.detach().clone() for k, v in strategy.final_model().state_dict().items()}

    recipe = _afr_recipe(tmp_path, profile, role)
    assert type(task.recipe).__name__ == type(recipe).__name__
    assert task.recipe.scalar_values() == recipe.scalar_values()
    per_client = run_federation(profile, recipe, SEED, stage="final", batched=False)
    test = profile.evaluate(per_client.build_model(profile), profile.data("test"))

    # Bit-identical to AFR's per-client path: every round's validation metric, the weights, the test metric.
    assert len(result["curve"]) == BUDGET["rounds"]
    assert [r["val"] for r in result["curve"]] == [r["val"] for r in per_client.curve]
    assert [r["val_federated"] for r in result["curve"]] == [r["val"] for r in per_client.curve]
    assert [r["val_per_client"] for r in result["curve"]] == [r["val_per_client"] for r in per_client.curve]
    assert set(flower_weights) == set(per_client.state_dict)
    for key, value in per_client.state_dict.items():
        assert torch.equal(flower_weights[key], value), key
    assert result["test"] == test.mean and result["test_per_client"] == test.per_client
    moved = any(
        not torch.equal(v, task.initial_model(SEED).state_dict()[k]) for k, v in flower_weights.items()
    )
    assert moved, "the federation did not train"

    # AFR's default (batched) path agrees to float rounding; the metric within the verdict margin.
    batched = run_federation(profile, recipe, SEED, stage="final")
    for key, value in batched.state_dict.items():
        assert torch.allclose(flower_weights[key], value, atol=1e-5, rtol=0), key
    batched_test = profile.evaluate(batched.build_model(profile), profile.data("test")).mean
    assert abs(result["test"] - batched_test) <= profile.verdict.margin


def test_export_folder_and_cli(campaign, tmp_path: Path) -> None:
    folder, names = campaign
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }

    def afr(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", "import sys; from afr.cli import main; sys.exit(main())", *args],
            capture_output=True, text=True, env=env, timeout=240,
        )  # fmt: skip

    out = tmp_path / "agent"
    done = afr("export", "flower", str(folder), names["agent"], "--out", str(out), "--seed", "7")
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout
    listed = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.py")) + ["README.md", "export.json"]
    assert {"recipe.py", "run_simulation.py", "flower_app/strategy.py", "flower_app/client.py"} <= set(listed)
    assert (out / "README.md").is_file()
    recipe_text = (out / "recipe.py").read_text()
    assert recipe_text.endswith(AGENT_RECIPE) and names["agent"] in recipe_text.splitlines()[0]
    spec = json.loads((out / "export.json").read_text())
    assert spec["seed"] == 7 and spec["class_name"] == "Everything" and spec["profile"] == "heart_disease"
    assert spec["profile_cfg"]["rounds"] == BUDGET["rounds"]
    # A control trial: its scalars travel in export.json.
    done = afr("export", "flower", str(folder), names["fedavg"], "--out", str(tmp_path / "fedavg"))
    control = json.loads((tmp_path / "fedavg" / "export.json").read_text())
    assert done.returncode == 0 and control["scalars"] == {"lr": 0.02} and control["class_name"] == "FedAvg"

    # A database URL (campaign.storage=) and the campaign's name, as for `afr report`.
    url = f"sqlite:///{folder / 'ledger.db'}"
    done = afr(
        "export", "flower", url, names["scaffold"], "--campaign", "flower", "--out", str(tmp_path / "url")
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "url" / "export.json").read_text())["class_name"] == "Scaffold"

    for args, what in [
        ((str(folder), "agent#999", "--out", str(tmp_path / "x")), "no candidate named 'agent#999'"),
        ((str(folder), "best", "--out", str(tmp_path / "x")), "'best' is not a candidate name"),
        ((str(tmp_path / "nowhere"), names["agent"], "--out", str(tmp_path / "x")), "no ledger.db in"),
        ((str(folder), names["agent"], "--out", str(out)), "already exists and is not an empty folder"),
    ]:
        done = afr("export", "flower", *args)
        errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert len(errors) == 1 and what in errors[0], done.stderr
    assert not (tmp_path / "x").exists()
    with Ledger.for_campaign_dir(folder) as ledger:
        rejected = next(c for c in ledger.candidates(1) if c.status == "rejected")
    done = afr("export", "flower", str(folder), rejected.name, "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and "rejected by the validator" in done.stderr


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs flwr[simulation] (Ray)")
def test_ray_simulation_reproduces_afr(campaign, profile, shared_data: Path, tmp_path: Path) -> None:
    """``python run_simulation.py --backend ray``: Flower's simulation engine, one SuperNode per client."""
    from afr.export import export_flower

    folder, names = campaign
    out = export_flower(folder, names["scaffold"], tmp_path / "export")
    result_file = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "run_simulation.py", "--backend", "ray", "--rounds", "2", "--num-cpus", "2",
         "--data-dir", str(shared_data), "--out", str(result_file)],
        cwd=out, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(result_file.read_text())
    afr_run = run_federation(
        profile.with_overrides(rounds=2), _afr_recipe(tmp_path, profile, "scaffold"), SEED, batched=False,
        stage="final",
    )  # fmt: skip
    assert [r["val"] for r in result["curve"]] == [r["val"] for r in afr_run.curve]
    test = profile.evaluate(afr_run.build_model(profile), profile.data("test"))
    assert result["test"] == test.mean
