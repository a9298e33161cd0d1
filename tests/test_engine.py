"""The federated engine on tiny budgets: determinism, FedAvg weighting, budget and selection checks,
failures, the data parts it may read, TensorBoard logging and communication accounting."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from afr.engine import run_federation
from afr.errors import TrainingFailure
from afr.profiles import Profile, make_profile
from afr.recipe import FedAvg

ROUNDS, STEPS = 2, 5


def tcga(shared_data: Path, **overrides: Any) -> Profile:
    return make_profile(
        "tcga_brca", data_dir=shared_data, **{"rounds": ROUNDS, "local_steps": STEPS, **overrides}
    )


@pytest.fixture
def profile(shared_data: Path) -> Profile:
    return tcga(shared_data)


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Recorder(FedAvg):
    """FedAvg that records what the engine hands to ``aggregate`` and what it returned."""

    name = "recorder"

    def __init__(self, **values: float) -> None:
        super().__init__(**values)
        self.calls: list[dict[str, Any]] = []

    def aggregate(self, global_params, updates, server_state):
        new = super().aggregate(global_params, updates, server_state)
        self.calls.append(
            {
                "global": {k: v.clone() for k, v in global_params.items()},
                "updates": [(u.client, u.num_samples, u.num_steps, {k: v.clone() for k, v in u.delta.items()})
                            for u in updates],
                "new": {k: v.clone() for k, v in new.items()},
            }
        )  # fmt: skip
        return new


# --- determinism -----------------------------------------------------------------------------------


def test_same_seed_is_bit_identical(shared_data: Path) -> None:
    runs = [run_federation(p, p.make_recipe(FedAvg), 7) for p in (tcga(shared_data), tcga(shared_data))]
    assert same_weights(runs[0].state_dict, runs[1].state_dict)
    # json.dumps: NaN (a client whose val split has no admissible pair) compares equal as text
    assert json.dumps(runs[0].curve) == json.dumps(runs[1].curve)
    assert len(runs[0].curve) == ROUNDS
    other = run_federation(tcga(shared_data), tcga(shared_data).make_recipe(FedAvg), 8)
    assert not any(torch.equal(runs[0].state_dict[k], other.state_dict[k]) for k in other.state_dict)


def test_same_seed_same_result_on_reused_profile(profile: Profile) -> None:
    recipe = profile.make_recipe(FedAvg)
    first = run_federation(profile, recipe, 3)
    second = run_federation(profile, recipe, 3)
    assert same_weights(first.state_dict, second.state_dict)


def test_seed_changes_synthetic_run() -> None:
    profile = make_profile("synthetic", rounds=ROUNDS, local_steps=STEPS)
    a = run_federation(profile, profile.make_recipe(FedAvg), 0)
    b = run_federation(profile, profile.make_recipe(FedAvg), 0)
    c = run_federation(profile, profile.make_recipe(FedAvg), 1)
    assert same_weights(a.state_dict, b.state_dict) and a.curve == b.curve
    assert not same_weights(a.state_dict, c.state_dict)


def test_threads_restored(profile: Profile) -> None:
    before = torch.get_num_threads()
    run_federation(profile, profile.make_recipe(FedAvg), 0, threads=1)
    assert torch.get_num_threads() == before


# --- FedAvg weighting end to end -------------------------------------------------------------------


@pytest.mark.parametrize(("stage", "part"), [("search", "fit"), ("final", "train")])
def test_fedavg_weighting_end_to_end(profile: Profile, stage: str, part: str) -> None:
    recipe = profile.make_recipe(Recorder, {"server_lr": 0.5, "lr": 0.1})
    result = run_federation(profile, recipe, 0, stage=stage)
    sizes = [len(c) for c in profile.data(part)]
    assert len(recipe.calls) == ROUNDS
    for call in recipe.calls:
        assert [u[0] for u in call["updates"]] == list(range(6))
        assert [u[1] for u in call["updates"]] == sizes
        assert [u[2] for u in call["updates"]] == [STEPS] * 6
    total = sum(sizes)
    for i, call in enumerate(recipe.calls):
        gap = 0.0
        for key, glob in call["global"].items():
            expected = glob.double() + 0.5 * sum(
                n / total * delta[key].double() for _, n, _, delta in call["updates"]
            )
            assert torch.allclose(call["new"][key].double(), expected, rtol=0, atol=1e-6)
            # the next round starts from the aggregate; the run returns the last one
            after = recipe.calls[i + 1]["global"][key] if i + 1 < ROUNDS else result.state_dict[key]
            assert torch.allclose(after.double(), expected, rtol=0, atol=1e-6)
            unweighted = glob.double() + 0.5 * sum(d[key].double() for *_, d in call["updates"]) / 6
            gap = max(gap, float((expected - unweighted).abs().max()))
        assert gap > 1e-3  # sample weights and a plain mean differ here: the check has teeth


# --- budget ----------------------------------------------------------------------------------------


def test_fedavg_spends_the_whole_budget(profile: Profile) -> None:
    result = run_federation(profile, profile.make_recipe(FedAvg), 0)
    assert result.steps_per_client == [ROUNDS * STEPS] * 6
    assert result.steps == 6 * ROUNDS * STEPS


class TooManySteps(FedAvg):
    name = "too_many"

    def local_steps(self, round_idx: int, client: int, max_steps: int) -> int:
        return max_steps + 1


class FewerSteps(FedAvg):
    name = "fewer"

    def local_steps(self, round_idx: int, client: int, max_steps: int) -> int:
        return min(client, max_steps)


class FloatSteps(FedAvg):
    name = "float_steps"

    def local_steps(self, round_idx: int, client: int, max_steps: int) -> int:
        return 2.0  # type: ignore[return-value]


def test_over_budget_is_a_training_failure(profile: Profile) -> None:
    with pytest.raises(TrainingFailure) as info:
        run_federation(profile, profile.make_recipe(TooManySteps), 0)
    assert str(STEPS + 1) in info.value.message and str(STEPS) in info.value.message
    with pytest.raises(TrainingFailure):
        run_federation(profile, profile.make_recipe(FloatSteps), 0)


def test_fewer_steps_spend_less(profile: Profile) -> None:
    result = run_federation(profile, profile.make_recipe(FewerSteps), 0)
    assert result.steps_per_client == [ROUNDS * min(c, STEPS) for c in range(6)]
    assert result.steps < ROUNDS * STEPS * 6


# --- client selection ------------------------------------------------------------------------------


def selecting(clients: Any) -> type[FedAvg]:
    class Select(FedAvg):
        name = "select"

        def select_clients(self, round_idx: int, num_clients: int, rng: torch.Generator) -> list[int]:
            return clients

    return Select


@pytest.mark.parametrize("clients", [[0, 6], [-1], [2, 2], [], [1.0], [True]], ids=repr)
def test_bad_selection_is_a_training_failure(profile: Profile, clients: list) -> None:
    with pytest.raises(TrainingFailure):
        run_federation(profile, profile.make_recipe(selecting(clients)), 0)


def test_partial_selection(profile: Profile) -> None:
    result = run_federation(profile, profile.make_recipe(selecting([1, 3])), 0)
    assert result.steps_per_client == [0, ROUNDS * STEPS, 0, ROUNDS * STEPS, 0, 0]
    assert result.bytes_up == result.bytes_down == ROUNDS * 2 * 40 * 4


# --- failures --------------------------------------------------------------------------------------


class NanObjective(FedAvg):
    name = "nan_objective"

    def local_objective(self, task_loss, model, ctx):
        return task_loss * float("nan")


class NanAggregate(FedAvg):
    name = "nan_aggregate"

    def aggregate(self, global_params, updates, server_state):
        new = super().aggregate(global_params, updates, server_state)
        return {k: v * float("inf") for k, v in new.items()}


class NanLr(FedAvg):
    name = "nan_lr"

    def client_lr(self, round_idx: int, client: int) -> float:
        return float("nan")


class WrongKeys(FedAvg):
    name = "wrong_keys"

    def aggregate(self, global_params, updates, server_state):
        return {"not_a_parameter": torch.zeros(1)}


@pytest.mark.parametrize("cls", [NanObjective, NanAggregate, NanLr, WrongKeys], ids=lambda c: c.name)
def test_broken_recipe_is_a_training_failure(profile: Profile, cls: type[FedAvg]) -> None:
    with pytest.raises(TrainingFailure) as info:
        run_federation(profile, profile.make_recipe(cls), 0)
    assert info.value.message  # one readable message


def test_nan_from_a_middle_step_is_caught(profile: Profile) -> None:
    class NanOnce(FedAvg):
        name = "nan_once"

        def local_objective(self, task_loss, model, ctx):
            return task_loss * float("nan") if ctx.round_idx == 0 and ctx.step == 1 else task_loss

    with pytest.raises(TrainingFailure):
        run_federation(profile, profile.make_recipe(NanOnce), 0)


def test_bad_stage(profile: Profile) -> None:
    with pytest.raises(ValueError, match="stage"):
        run_federation(profile, profile.make_recipe(FedAvg), 0, stage="test")  # type: ignore[arg-type]


# --- data parts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("stage", "parts"), [("search", {"fit", "val"}), ("final", {"train", "val"})])
def test_engine_reads_only_training_parts(profile: Profile, stage: str, parts: set[str]) -> None:
    requested: list[str] = []
    original = profile.data

    def spy(part):
        requested.append(part)
        return original(part)

    profile.data = spy  # type: ignore[method-assign]
    run_federation(profile, profile.make_recipe(FedAvg), 0, stage=stage)
    assert "test" not in requested
    assert set(requested) == parts


# --- logging and accounting ------------------------------------------------------------------------


def test_tensorboard_events(profile: Profile, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = tmp_path / "tb"
    result = run_federation(profile, profile.make_recipe(FedAvg), 0, log_dir=log_dir)
    assert list(log_dir.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(log_dir))
    events.Reload()
    assert "val/c_index" in events.Tags()["scalars"]
    vals = events.Scalars("val/c_index")
    assert [e.step for e in vals] == list(range(1, ROUNDS + 1))
    assert vals[-1].value == pytest.approx(result.final_val, abs=1e-6)


def test_no_log_dir_writes_nothing(profile: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_federation(profile, profile.make_recipe(FedAvg), 0)
    assert list(tmp_path.iterdir()) == []


def test_on_round_and_curve(profile: Profile) -> None:
    seen: list[dict] = []
    result = run_federation(profile, profile.make_recipe(FedAvg), 0, on_round=seen.append)
    assert [r["round"] for r in seen] == list(range(1, ROUNDS + 1))
    assert seen == result.curve
    for record in result.curve:
        assert math.isfinite(record["train_loss"]) and len(record["val_per_client"]) == 6
    assert result.final_val == result.curve[-1]["val"] and 0.0 <= result.final_val <= 1.0


def test_bytes_counted(profile: Profile) -> None:
    result = run_federation(profile, profile.make_recipe(FedAvg), 0)
    params = sum(p.numel() for p in profile.build_model().parameters())
    assert params == 40
    assert result.bytes_up == result.bytes_down == ROUNDS * 6 * 40 * 4


def test_result_builds_the_trained_model(profile: Profile) -> None:
    result = run_federation(profile, profile.make_recipe(FedAvg), 0)
    model = result.build_model(profile)
    assert same_weights(model.state_dict(), result.state_dict)
    fresh = profile.build_model()
    assert not same_weights(fresh.state_dict(), result.state_dict)
