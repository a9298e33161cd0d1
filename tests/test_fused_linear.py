"""Closed-form local steps (afr/engine/_batched.py, ``FusedLinear``): a profile's ``LinearHead`` trains
FedAvg's and FedProx's objectives without autograd, and must give what the per-client path gives —
including saturated sigmoids, short last batches, partial selection and per-client step counts and
learning rates; a head that disagrees with autograd, or a subclass that changes the loss but not the head,
is not used. ``BatchStream.take`` must hand out the very batches ``next`` would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from afr.engine import BatchStream, RunResult, _batched, client_generator, run_federation
from afr.profiles import ClientData, LinearHead, Profile, make_profile
from afr.profiles.heart_disease import HeartDisease
from afr.profiles.synthetic import Synthetic
from afr.recipe import FedAvg, FedProx

RTOL, ATOL = 1e-3, 1e-4


@pytest.mark.parametrize(("n", "batch"), [(10, 4), (8, 4), (3, 4), (1, 1), (7, 3)])
def test_take_hands_out_the_batches_of_next(n: int, batch: int) -> None:
    data = ClientData(torch.randn(n, 2), torch.arange(n))
    one, other = (BatchStream(data, batch, client_generator(0, 1)) for _ in range(2))
    for count in (1, 3, 0, 7, 2, 5):
        expected = [one.next() for _ in range(count)]
        indices, lengths = other.take(count)
        assert indices.shape == (count, batch) and lengths.shape == (count,)
        for (x, y), row, length in zip(expected, indices, lengths, strict=True):
            assert torch.equal(x, data.inputs[row[:length]]) and torch.equal(y, data.targets[row[:length]])
        assert torch.equal(one.next()[0], other.next()[0])  # the streams stay in step


class Schedules(FedProx):
    """Partial selection, a step count (some zero) and a learning rate per client."""

    name = "fused_schedules"

    def select_clients(self, round_idx: int, num_clients: int, rng: torch.Generator) -> list[int]:
        return sorted(int(c) for c in torch.randperm(num_clients, generator=rng)[: num_clients - 1])

    def local_steps(self, round_idx: int, client: int, max_steps: int) -> int:
        return max(0, max_steps - 4 * client - round_idx)

    def client_lr(self, round_idx: int, client: int) -> float:
        return self.lr * (1 + client) / (1 + round_idx)


class OwnObjective(FedAvg):
    name = "own_objective"

    def local_objective(self, task_loss: Tensor, model: nn.Module, ctx: Any) -> Tensor:
        return task_loss * 1.0


def mlp(base: type[FedAvg]) -> type[FedAvg]:
    return type("OnMlp", (base,), {"name": "on_mlp", "model_variant": lambda self: "mlp"})


class Saturated(HeartDisease):
    """Heart disease with inputs x 40: most sigmoids saturate (p == 0 or 1 in float32), where autograd's
    gradient is 0, not the textbook p - y."""

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        train, test = super().load_splits()
        return [ClientData(d.inputs * 40, d.targets) for d in train], test


class WrongHead(HeartDisease):
    def linear_head(self, model: nn.Module) -> LinearHead | None:
        head = super().linear_head(model)
        assert head is not None
        return LinearHead(head.linear, head.sample_loss, lambda z, y, s: 2 * head.sample_grad(z, y, s))


class OtherLoss(HeartDisease):
    """Changes the task loss but inherits the head: the head no longer describes the task."""

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return 2 * super().loss(outputs, targets)


@pytest.fixture()
def fused_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    train = _batched.FusedLinear.train

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return train(self, *args, **kwargs)

    monkeypatch.setattr(_batched.FusedLinear, "train", counted)
    return calls


def assert_same(batched: RunResult, per_client: RunResult) -> None:
    assert batched.engine_path == "batched", batched.engine_note
    for key, value in batched.state_dict.items():
        torch.testing.assert_close(value, per_client.state_dict[key], rtol=RTOL, atol=ATOL, msg=key)
    assert batched.steps_per_client == per_client.steps_per_client
    for a, b in zip(batched.curve, per_client.curve, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3, abs=1e-5)
        assert a["val"] == pytest.approx(b["val"], abs=1e-6, nan_ok=True)


def runs(profile: Profile, cls: type[FedAvg], seed: int = 0) -> tuple[RunResult, RunResult]:
    return (
        run_federation(profile, profile.make_recipe(cls), seed),
        run_federation(profile, profile.make_recipe(cls), seed, batched=False),
    )


@pytest.mark.parametrize("name", ["heart_disease", "synthetic"])
@pytest.mark.parametrize(
    ("cls", "fused"), [(FedAvg, True), (FedProx, True), (Schedules, True), (OwnObjective, False)]
)
def test_linear_heads_train_in_closed_form_as_autograd_does(
    shared_data: Path, fused_calls: list[int], name: str, cls: type[FedAvg], fused: bool
) -> None:
    extra = {"num_clients": 5} if name == "synthetic" else {}
    profile = make_profile(name, data_dir=shared_data, rounds=3, local_steps=45, **extra)
    for seed in (0, 1):
        batched, per_client = runs(profile, cls, seed)
        assert_same(batched, per_client)
        # the run's record says which path made its weights
        assert batched.engine_note == ("stacked, closed-form linear steps" if fused else "stacked")
    assert bool(fused_calls) == fused
    fused_calls.clear()
    batched, per_client = runs(profile, mlp(cls))
    assert_same(batched, per_client)  # no head for the MLP: autograd
    assert not fused_calls and batched.engine_note == "stacked"


def test_saturated_sigmoids_get_autograds_gradient(shared_data: Path, fused_calls: list[int]) -> None:
    base = make_profile("heart_disease", data_dir=shared_data, rounds=3, local_steps=40)
    profile = Saturated(base.cfg, data_dir=shared_data)
    fit = torch.cat([d.inputs for d in profile.data("fit")])
    with torch.no_grad():
        p = profile.build_model("default")(fit)
    assert ((p == 0) | (p == 1)).float().mean() > 0.2  # the case is real
    assert_same(*runs(profile, FedAvg))
    assert fused_calls


@pytest.mark.parametrize(
    ("cls", "why"),
    [
        (WrongHead, "differs from autograd's"),
        (OtherLoss, "OtherLoss changes the task loss, not its linear head"),
    ],
)
def test_a_head_that_is_not_the_task_is_not_used(
    shared_data: Path, fused_calls: list[int], cls: type[Profile], why: str
) -> None:
    base = make_profile("heart_disease", data_dir=shared_data, rounds=2, local_steps=10)
    profile = cls(base.cfg, data_dir=shared_data)
    model = profile.build_model("default")
    params = list(model.parameters())
    head, note = _batched.fused_head(model, profile, profile.data("fit"), profile.budget.batch_size, params)
    assert head is None and why in note
    assert_same(*runs(profile, FedAvg))
    assert not fused_calls


def test_shipped_heads_pass_their_probe(shared_data: Path) -> None:
    for profile in (
        make_profile("heart_disease", data_dir=shared_data),
        Synthetic(make_profile("synthetic", num_clients=3).cfg),
    ):
        model = profile.build_model("default")
        head, note = _batched.fused_head(
            model, profile, profile.data("fit"), profile.budget.batch_size, list(model.parameters())
        )
        assert head is not None, note
