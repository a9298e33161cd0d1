"""Recipes: each server/client rule on tiny cases computed by hand, declared scalars, loading by name/path."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from afr.errors import ConfigError
from afr.recipe import (
    RECIPES,
    ClientUpdate,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedOpt,
    FedProx,
    FedYogi,
    LocalContext,
    Recipe,
    Scaffold,
    Scalar,
    recipe_class,
)

# every hook of the recipe interface (public methods of Recipe but the scalar bookkeeping) + FedOpt's rule
HOOKS = {
    name
    for name, value in vars(Recipe).items()
    if inspect.isfunction(value) and not name.startswith("_") and name != "scalar_values"
} | {"second_moment"}
BASE_HOOKS = {"model_variant", "select_clients", "local_steps", "client_lr", "local_objective", "aggregate"}


def upd(client: int, n: int, *values: float) -> ClientUpdate:
    """A client update of a one-parameter 'model' ``w`` (float64, so the arithmetic is exact enough)."""
    return ClientUpdate(client, {"w": torch.tensor(values, dtype=torch.float64)}, num_samples=n, num_steps=1)


def w(*values: float) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor(values, dtype=torch.float64)}


def assert_close(tensor: torch.Tensor, expected: list[float], tol: float = 1e-12) -> None:
    got = tensor.tolist()
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert abs(a - b) <= tol * max(1.0, abs(b)), (got, expected)


# --- FedAvg ----------------------------------------------------------------------------------------


def test_fedavg_sample_weighted_mean() -> None:
    # n = 1 and 3, deltas 4 and 8: (1*4 + 3*8) / 4 = 7.
    updates = [upd(0, 1, 4.0, -2.0), upd(1, 3, 8.0, 2.0)]
    new = FedAvg().aggregate(w(1.0, 1.0), updates, {})
    assert_close(new["w"], [1.0 + 7.0, 1.0 + (1 * -2.0 + 3 * 2.0) / 4])  # server_lr defaults to 1


def test_fedavg_server_lr_scales_the_mean_delta() -> None:
    updates = [upd(0, 1, 4.0), upd(1, 3, 8.0)]
    new = FedAvg(server_lr=0.5).aggregate(w(1.0), updates, {})
    assert_close(new["w"], [1.0 + 0.5 * 7.0])


def test_fedavg_does_not_mutate_inputs() -> None:
    glob, updates = w(1.0), [upd(0, 2, 3.0)]
    FedAvg().aggregate(glob, updates, {})
    assert glob["w"].tolist() == [1.0] and updates[0].delta["w"].tolist() == [3.0]


def test_fedavg_schedule_hooks() -> None:
    r = FedAvg(lr=0.05)
    assert r.select_clients(0, 4, torch.Generator()) == [0, 1, 2, 3]
    assert r.local_steps(3, 1, 17) == 17
    assert r.client_lr(0, 0) == 0.05
    assert r.model_variant() == "default"
    loss = torch.tensor(2.5)
    assert r.local_objective(loss, nn.Linear(1, 1), None) is loss  # type: ignore[arg-type]


# --- FedProx ---------------------------------------------------------------------------------------


def _prox_setup() -> tuple[nn.Linear, LocalContext]:
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0]]))
        model.bias.copy_(torch.tensor([3.0]))
    glob = {"weight": torch.tensor([[0.0, -1.0]]), "bias": torch.tensor([1.0])}
    ctx = LocalContext(round_idx=0, client=0, global_params=glob, client_state={}, num_samples=10)
    return model, ctx


def test_fedprox_objective_value() -> None:
    model, ctx = _prox_setup()
    # ||θ - x||² = (1-0)² + (2+1)² + (3-1)² = 1 + 9 + 4 = 14 ; mu/2 * 14 = 0.05 * 14 = 0.7
    out = FedProx(mu=0.1).local_objective(torch.tensor(1.5), model, ctx)
    assert math.isclose(out.detach().item(), 1.5 + 0.7, rel_tol=1e-6)
    out = FedProx(mu=2.0).local_objective(torch.tensor(0.0), model, ctx)
    assert math.isclose(out.detach().item(), 14.0, rel_tol=1e-6)


def test_fedprox_gradient_of_prox_term() -> None:
    model, ctx = _prox_setup()
    FedProx(mu=0.5).local_objective(torch.tensor(0.0), model, ctx).backward()
    # d/dθ mu/2 ||θ - x||² = mu (θ - x)
    assert torch.allclose(model.weight.grad, torch.tensor([[0.5 * 1.0, 0.5 * 3.0]]))
    assert torch.allclose(model.bias.grad, torch.tensor([0.5 * 2.0]))
    assert ctx.global_params["weight"].grad is None  # the reference gets no gradient


def test_fedprox_aggregates_like_fedavg() -> None:
    updates = [upd(0, 1, 4.0), upd(1, 3, 8.0)]
    assert_close(FedProx().aggregate(w(0.0), updates, {})["w"], [7.0])


# --- FedAvgM ---------------------------------------------------------------------------------------


def test_fedavgm_two_rounds_by_hand() -> None:
    r = FedAvgM(server_momentum=0.9, server_lr=0.5)
    state: dict = {}
    # round 1: d = (1*2 + 1*4)/2 = 3 ; v = 3 ; x = 0 + 0.5*3 = 1.5
    x1 = r.aggregate(w(0.0), [upd(0, 1, 2.0), upd(1, 1, 4.0)], state)
    assert_close(x1["w"], [1.5])
    # round 2: d = 1 ; v = 0.9*3 + 1 = 3.7 ; x = 1.5 + 0.5*3.7 = 3.35
    x2 = r.aggregate(x1, [upd(0, 5, 1.0)], state)
    assert_close(x2["w"], [3.35])


def test_fedavgm_zero_momentum_is_fedavg() -> None:
    r = FedAvgM(server_momentum=0.0)
    state: dict = {}
    x1 = r.aggregate(w(0.0), [upd(0, 1, 2.0)], state)
    x2 = r.aggregate(x1, [upd(0, 1, 1.0)], state)
    assert_close(x2["w"], [3.0])


# --- FedAdam / FedYogi / FedAdagrad ----------------------------------------------------------------

B1, B2, TAU, SLR = 0.9, 0.99, 1e-3, 0.1
D1 = [1.0, 2.0]  # round-1 mean delta
D2 = [-0.5, 0.05]  # round-2 mean delta: d² = 0.25 > v for the first coordinate, 0.0025 < v for the second


def _two_rounds(cls: type[FedOpt]) -> tuple[list[float], list[float]]:
    r = cls(beta1=B1, beta2=B2, tau=TAU, server_lr=SLR)
    state: dict = {}
    # round 1: two clients, n = 1 and 3, whose weighted mean is D1
    x1 = r.aggregate(w(0.0, 0.0), [upd(0, 1, 4.0, 2.0), upd(1, 3, 0.0, 2.0)], state)
    x2 = r.aggregate(x1, [upd(0, 7, *D2)], state)
    return x1["w"].tolist(), x2["w"].tolist()


def _by_hand(rule: str) -> tuple[list[float], list[float]]:
    x1, x2 = [], []
    for d1, d2 in zip(D1, D2, strict=True):
        m = (1 - B1) * d1
        # round 1 from v = 0: adam (1-b2) d²; yogi 0 - (1-b2) d² sign(0 - d²) = (1-b2) d²; adagrad d²
        v = (1 - B2) * d1 * d1 if rule in ("adam", "yogi") else d1 * d1
        a = 0.0 + SLR * m / (math.sqrt(v) + TAU)
        m = B1 * m + (1 - B1) * d2
        if rule == "adam":
            v = B2 * v + (1 - B2) * d2 * d2
        elif rule == "yogi":
            sign = 1.0 if v - d2 * d2 > 0 else -1.0
            v = v - (1 - B2) * d2 * d2 * sign
        else:
            v = v + d2 * d2
        x1.append(a)
        x2.append(a + SLR * m / (math.sqrt(v) + TAU))
    return x1, x2


@pytest.mark.parametrize(("cls", "rule"), [(FedAdam, "adam"), (FedYogi, "yogi"), (FedAdagrad, "adagrad")])
def test_adaptive_server_two_rounds_by_hand(cls: type[FedOpt], rule: str) -> None:
    got1, got2 = _two_rounds(cls)
    want1, want2 = _by_hand(rule)
    for got, want in ((got1, want1), (got2, want2)):
        for a, b in zip(got, want, strict=True):
            assert math.isclose(a, b, rel_tol=1e-12), (cls.name, got, want)


def test_adam_round_one_numbers() -> None:
    # d = 1: m = 0.1, v = 0.01*1 = 0.01, x = 0.1 * 0.1 / (0.1 + 0.001)
    got1, _ = _two_rounds(FedAdam)
    assert math.isclose(got1[0], 0.01 / 0.101, rel_tol=1e-12)


def test_yogi_differs_from_adam_in_round_two() -> None:
    adam1, adam2 = _two_rounds(FedAdam)
    yogi1, yogi2 = _two_rounds(FedYogi)
    assert adam1 == pytest.approx(yogi1, rel=1e-12)  # from v = 0 both give (1-b2) d²
    for a, y in zip(adam2, yogi2, strict=True):
        assert abs(a - y) > 1e-6
    # explicit numbers for the first coordinate: v_adam = 0.99*0.01 + 0.01*0.25 = 0.0124,
    # v_yogi = 0.01 + 0.01*0.25 = 0.0125 (d² > v)
    x1 = 0.1 * 0.1 / (0.1 + 1e-3)
    m2 = 0.9 * 0.1 + 0.1 * -0.5
    assert math.isclose(adam2[0], x1 + 0.1 * m2 / (math.sqrt(0.0124) + 1e-3), rel_tol=1e-12)
    assert math.isclose(yogi2[0], x1 + 0.1 * m2 / (math.sqrt(0.0125) + 1e-3), rel_tol=1e-12)


def test_fedopt_state_is_kept_in_server_state() -> None:
    state: dict = {}
    FedAdam().aggregate(w(0.0), [upd(0, 1, 1.0)], state)
    assert set(state) == {"m", "v"}
    assert math.isclose(float(state["m"]["w"]), 0.1) and math.isclose(float(state["v"]["w"]), 0.001)


# --- declared scalars ------------------------------------------------------------------------------


def test_declared_scalars() -> None:
    assert set(FedAvg.declared_scalars()) == {"lr", "server_lr"}
    assert set(FedProx.declared_scalars()) == {"lr", "server_lr", "mu"}
    assert set(FedAvgM.declared_scalars()) == {"lr", "server_lr", "server_momentum"}
    for cls in (FedAdam, FedYogi, FedAdagrad):
        assert set(cls.declared_scalars()) == {"beta1", "beta2", "tau", "server_lr", "lr"}
    # the nearest declaration wins: FedOpt re-declares server_lr with its own default
    assert FedAdam.declared_scalars()["server_lr"].default == 0.01
    assert FedAvg.declared_scalars()["server_lr"].default == 1.0
    assert FedAdam().server_lr == 0.01 and FedProx().mu == 0.01


def test_scalar_values_and_overrides() -> None:
    r = FedProx(mu=0.5, lr=0.2)
    assert r.scalar_values() == {"lr": 0.2, "mu": 0.5, "server_lr": 1.0}
    assert FedProx().mu == 0.01  # instances do not share overrides


@pytest.mark.parametrize(
    ("cls", "values"),
    [
        (FedProx, {"mu": 100.0}),
        (FedProx, {"mu": 0.0}),
        (FedAvg, {"lr": -1.0}),
        (FedAdam, {"beta2": 1.5}),
        (FedAvgM, {"server_momentum": 1.0}),
        (FedAvg, {"lr": float("nan")}),
        (FedAvg, {"lr": "0.1"}),
    ],
)
def test_out_of_range_or_non_numeric_scalar_rejected(cls: type[Recipe], values: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(values))):
        cls(**values)


def test_undeclared_scalar_rejected() -> None:
    with pytest.raises(ValueError, match="mu"):
        FedAvg(mu=0.1)


def test_scalar_clip_and_with_default() -> None:
    mu = FedProx.declared_scalars()["mu"]
    assert (mu.clip(100.0), mu.clip(0.0), mu.clip(0.5)) == (10.0, 1e-4, 0.5)
    steps = Scalar(4, 1, 10, integer=True)
    assert steps.clip(7.6) == 8.0 and steps.clip(-3) == 1.0
    moved = mu.with_default(50.0)
    assert moved.default == 10.0 and (moved.low, moved.high, moved.log, moved.name) == (
        1e-4,
        10.0,
        True,
        "mu",
    )
    assert mu.default == 0.01, "the declaration itself is unchanged"


# --- each recipe overrides only what differs from FedAvg -------------------------------------------


@pytest.mark.parametrize(
    ("cls", "hooks"),
    [
        (FedProx, {"local_objective"}),
        (FedAvgM, {"aggregate"}),
        (FedOpt, {"aggregate", "second_moment"}),
        (FedAdam, {"second_moment"}),
        (FedYogi, {"second_moment"}),
        (FedAdagrad, {"second_moment"}),
        (Scaffold, {"broadcast", "local_objective", "client_extras", "aggregate"}),
    ],
)
def test_recipes_override_only_what_differs(cls: type[Recipe], hooks: set[str]) -> None:
    assert HOOKS & set(vars(cls)) == hooks
    assert issubclass(cls, FedAvg)


def test_fedavg_implements_every_hook() -> None:
    assert BASE_HOOKS <= HOOKS
    assert set(vars(FedAvg)) >= BASE_HOOKS
    for hook in BASE_HOOKS:
        assert getattr(FedAvg, hook) is not getattr(Recipe, hook)


# --- recipe_class ----------------------------------------------------------------------------------


def test_recipe_class_by_name() -> None:
    assert {"fedavg", "fedprox", "fedavgm", "fedadam", "fedyogi", "fedadagrad"} <= set(RECIPES)
    for name, cls in RECIPES.items():
        assert recipe_class(name) is cls and cls.name == name


def test_recipe_class_unknown_name() -> None:
    with pytest.raises(ConfigError) as info:
        recipe_class("fedsomething")
    text = info.value.message
    assert "fedsomething" in text
    assert all(name in text for name in RECIPES)


def test_recipe_class_from_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        "from afr.recipe import FedAvg, scalar\n\n"
        "class Halved(FedAvg):\n"
        "    name = 'halved'\n"
        "    shrink = scalar(0.5, 0.0, 1.0)\n\n"
        "    def local_steps(self, round_idx, client, max_steps):\n"
        "        return int(max_steps * self.shrink)\n"
    )
    cls = recipe_class(str(path))
    assert cls.__name__ == "Halved" and cls.name == "halved" and issubclass(cls, FedAvg)
    assert cls().local_steps(0, 0, 10) == 5
    assert set(cls.declared_scalars()) == {"lr", "server_lr", "shrink"}


@pytest.mark.parametrize(
    "source",
    [
        "from afr.recipe import FedAvg\n\nX = 1\n",  # imports a Recipe, defines none
        "from afr.recipe import FedAvg\n\nclass A(FedAvg):\n    pass\n\nclass B(FedAvg):\n    pass\n",
    ],
    ids=["none", "two"],
)
def test_recipe_file_needs_exactly_one_class(tmp_path: Path, source: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(source)
    with pytest.raises(ConfigError, match="exactly one Recipe subclass"):
        recipe_class(str(path))


def test_recipe_file_that_does_not_import(tmp_path: Path) -> None:
    # a broken candidate file is a bad input like any other: one ConfigError naming the file and line
    path = tmp_path / "broken.py"
    path.write_text("from afr.recipe import FedAvg\n\nclass Broken(FedAvg)\n    pass\n")
    with pytest.raises(ConfigError) as info:
        recipe_class(str(path))
    assert "broken.py" in info.value.message and "3" in info.value.message


def test_recipe_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        recipe_class(str(tmp_path / "absent.py"))
