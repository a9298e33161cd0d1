"""Task profiles: real-data splits, synthetic generation and grouping, validation carving, models,
losses and metrics, and the per-profile scalar space."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from afr.errors import ConfigError
from afr.profiles import Profile, load_profile_config, make_profile, profile_names
from afr.profiles.synthetic.dataset import generate_devices
from afr.profiles.tcga_brca.metric import cox_loss
from afr.recipe import RECIPES, FedAdam, FedAvg, FedProx

HEART_COUNTS = [(199, 104), (172, 89), (30, 16), (85, 45)]
TCGA_COUNTS = [(248, 63), (156, 40), (164, 42), (129, 33), (129, 33), (40, 11)]


@pytest.fixture(scope="module")
def heart(shared_data: Path) -> Profile:
    return make_profile("heart_disease", data_dir=shared_data)


@pytest.fixture(scope="module")
def tcga(shared_data: Path) -> Profile:
    return make_profile("tcga_brca", data_dir=shared_data)


@pytest.fixture(scope="module")
def synthetic() -> Profile:
    return make_profile("synthetic")


def rows(inputs: torch.Tensor, targets: torch.Tensor) -> Counter:
    """The multiset of (features, target) rows, to compare data sets regardless of order."""
    flat = torch.cat(
        [inputs.reshape(len(inputs), -1).double(), targets.reshape(len(targets), -1).double()], 1
    )
    return Counter(tuple(r) for r in flat.tolist())


# --- heart_disease ---------------------------------------------------------------------------------


def test_heart_counts_and_types(heart: Profile) -> None:
    train, test = heart.data("train"), heart.data("test")
    assert heart.num_clients == 4
    assert [(len(a), len(b)) for a, b in zip(train, test, strict=True)] == HEART_COUNTS
    for part in (train, test):
        for client in part:
            assert client.inputs.dtype == torch.float32 and client.inputs.shape[1] == 13
            assert client.targets.shape == (len(client), 1)
            assert set(client.targets.unique().tolist()) <= {0.0, 1.0}
    assert {v for c in train for v in c.targets.unique().tolist()} == {0.0, 1.0}


def test_heart_per_center_normalisation(heart: Profile) -> None:
    for client in heart.data("train"):
        x = client.inputs.double()
        assert x.mean(0).abs().max() < 1e-5
        std = x.std(0, unbiased=True)
        constant = (x == x[0]).all(0)  # a feature constant in a center (switzerland's chol) stays at 0
        assert torch.allclose(std[~constant], torch.ones_like(std[~constant]), atol=1e-4)
        assert (x[:, constant] == 0).all()
        assert int(constant.sum()) <= 1
    # the test features are scaled with the train statistics, so they are not centred in general
    test_means = [float(c.inputs.double().mean(0).abs().max()) for c in heart.data("test")]
    assert max(test_means) > 0.1


# --- tcga_brca -------------------------------------------------------------------------------------


def test_tcga_counts_and_targets(tcga: Profile) -> None:
    train, test = tcga.data("train"), tcga.data("test")
    assert tcga.num_clients == 6
    assert [(len(a), len(b)) for a, b in zip(train, test, strict=True)] == TCGA_COUNTS
    for part in (train, test):
        for client in part:
            assert client.inputs.shape == (len(client), 39)
            assert client.targets.shape == (len(client), 2)  # (E, T)
            assert set(client.targets[:, 0].unique().tolist()) <= {0.0, 1.0}
            assert (client.targets[:, 1] >= 0).all()
    events = torch.cat([c.targets[:, 0] for c in train])
    assert 0 < events.sum() < len(events)
    assert torch.cat([c.targets[:, 1] for c in train]).max() > 1  # times, not indicators


# --- synthetic -------------------------------------------------------------------------------------


def _equal(a: Profile, b: Profile) -> bool:
    return all(
        torch.equal(x.inputs, y.inputs) and torch.equal(x.targets, y.targets)
        for part in ("train", "test")
        for x, y in zip(a.data(part), b.data(part), strict=True)
    )


def test_synthetic_deterministic_in_data_seed() -> None:
    a, b = make_profile("synthetic", data_seed=3), make_profile("synthetic", data_seed=3)
    assert _equal(a, b)
    assert not _equal(a, make_profile("synthetic", data_seed=4))


def test_synthetic_shapes(synthetic: Profile) -> None:
    assert synthetic.num_clients == 10
    for part in ("train", "test"):
        for client in synthetic.data(part):
            assert client.inputs.shape == (len(client), 60) and client.inputs.dtype == torch.float32
            assert client.targets.dtype == torch.int64
            assert int(client.targets.min()) >= 0 and int(client.targets.max()) < 10
    model = synthetic.build_model()
    assert model(synthetic.data("train")[0].inputs[:3]).shape == (3, 10)


@pytest.mark.parametrize("num_clients", [10, 7])
def test_synthetic_device_grouping(num_clients: int) -> None:
    profile = make_profile("synthetic", num_clients=num_clients)
    groups = profile.device_groups()
    assert len(groups) == num_clients == profile.num_clients
    assert sorted(d for g in groups for d in g) == list(range(30))
    for d in range(30):
        assert d in groups[d % num_clients]
    devices = generate_devices(1.0, 1.0, seed=0)
    train, test = profile.data("train"), profile.data("test")
    for c, group in enumerate(groups):
        sizes = [len(devices[d][1]) for d in group]
        assert len(train[c]) + len(test[c]) == sum(sizes)
        assert len(train[c]) == sum(int(0.9 * n) for n in sizes)
        # the client's samples are exactly its devices' samples
        expected = Counter()
        for d in group:
            expected += rows(torch.from_numpy(devices[d][0]), torch.from_numpy(devices[d][1]))
        assert rows(train[c].inputs, train[c].targets) + rows(test[c].inputs, test[c].targets) == expected


def test_generate_devices_sizes() -> None:
    devices = generate_devices(0.5, 0.5, seed=0)
    assert len(devices) == 30
    for x, y in devices:
        assert x.shape == (len(y), 60) and x.dtype == np.float32 and y.dtype == np.int64
        assert len(y) >= 50  # floor(lognormal) + 50


@pytest.mark.parametrize(("alpha", "beta"), [(0.0, 0.0), (0.5, 0.5), (1.0, 1.0)])
def test_synthetic_variants_selectable(alpha: float, beta: float) -> None:
    cfg = {**load_profile_config("synthetic"), "alpha": alpha, "beta": beta}
    profile = make_profile("synthetic", cfg)
    assert (profile.alpha, profile.beta, profile.iid) == (alpha, beta, False)
    devices = generate_devices(alpha, beta, seed=0)
    got = sum((rows(c.inputs, c.targets) for p in ("train", "test") for c in profile.data(p)), Counter())
    want = sum((rows(torch.from_numpy(x), torch.from_numpy(y)) for x, y in devices), Counter())
    assert got == want


def test_synthetic_variants_differ() -> None:
    variants = [make_profile("synthetic", alpha=a, beta=a) for a in (0.0, 0.5, 1.0)]
    variants.append(make_profile("synthetic", iid=True))
    for i in range(len(variants)):
        for j in range(i + 1, len(variants)):
            assert not _equal(variants[i], variants[j])


def test_synthetic_iid_variant() -> None:
    iid = make_profile("synthetic", iid=True)
    assert iid.iid is True
    x = torch.cat([c.inputs for c in iid.data("train")]).double()
    assert x.mean(0).abs().max() < 0.1  # every x ~ N(0, Σ)
    non_iid = torch.cat([c.inputs for c in make_profile("synthetic").data("train")]).double()
    assert non_iid.mean(0).abs().max() > 0.5  # x ~ N(v_k, Σ) with v_k ~ N(B_k, 1)


def test_synthetic_bad_config() -> None:
    with pytest.raises(ConfigError, match="num_clients"):
        make_profile("synthetic", num_clients=31)
    with pytest.raises(ConfigError, match="alpha"):
        make_profile("synthetic", alpha=-1)


# --- validation carving ----------------------------------------------------------------------------


def _profile(name: str, shared_data: Path, **overrides) -> Profile:
    return make_profile(name, data_dir=None if name == "synthetic" else shared_data, **overrides)


@pytest.mark.parametrize("name", ["heart_disease", "tcga_brca", "synthetic"])
def test_fit_and_val_partition_train(name: str, shared_data: Path) -> None:
    profile = _profile(name, shared_data)
    train, fit, val = profile.data("train"), profile.data("fit"), profile.data("val")
    assert len(train) == len(fit) == len(val) == profile.num_clients
    fraction = Fraction(str(profile.val_fraction))
    for t, f, v in zip(train, fit, val, strict=True):
        assert len(v) == math.ceil(fraction * len(t))
        assert len(f) + len(v) == len(t)
        assert rows(f.inputs, f.targets) + rows(v.inputs, v.targets) == rows(t.inputs, t.targets)
    assert profile.data("test")  # test is untouched by the carving
    assert [len(c) for c in profile.data("train")] == [len(c) for c in train]


@pytest.mark.parametrize("name", ["heart_disease", "tcga_brca", "synthetic"])
def test_val_split_seeded(name: str, shared_data: Path) -> None:
    def val_rows(p: Profile) -> list[Counter]:
        return [rows(c.inputs, c.targets) for c in p.data("val")]

    first = val_rows(_profile(name, shared_data, split_seed=5))
    assert val_rows(_profile(name, shared_data, split_seed=5)) == first
    other = val_rows(_profile(name, shared_data, split_seed=6))
    assert all(a != b for a, b in zip(first, other, strict=True))


def test_val_fraction_configurable(shared_data: Path) -> None:
    profile = _profile("tcga_brca", shared_data, val_fraction=0.5)
    assert [len(c) for c in profile.data("val")] == [math.ceil(n / 2) for n, _ in TCGA_COUNTS]
    with pytest.raises(ConfigError, match="val_fraction"):
        _profile("tcga_brca", shared_data, val_fraction=1.0)


@pytest.mark.parametrize("name", ["heart_disease", "tcga_brca", "synthetic"])
def test_val_split_stratified(name: str, shared_data: Path) -> None:
    profile = _profile(name, shared_data)
    checked = 0
    for t, v in zip(profile.data("train"), profile.data("val"), strict=True):
        labels = profile.stratify_labels(t)
        assert labels is not None
        classes, counts = np.unique(labels, return_counts=True)
        if len(classes) < 2 or counts.min() < 2:
            continue  # too few samples of a class to stratify: a plain random carve-out
        val_labels = profile.stratify_labels(v)
        for cls, count in zip(classes, counts, strict=True):
            expected = len(v) * count / len(t)
            assert abs(int((val_labels == cls).sum()) - expected) < 1, (name, cls, expected)
        checked += 1
    assert checked >= profile.num_clients // 2


# --- models ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "out_dim"), [("heart_disease", 1), ("tcga_brca", 1), ("synthetic", 10)])
def test_model_variants(name: str, out_dim: int, shared_data: Path) -> None:
    profile = _profile(name, shared_data)
    assert {"default", "mlp"} <= set(profile.model_variants)
    client = profile.data("train")[0]
    inputs, targets = client.slice(0, 8)
    for variant in profile.model_variants:
        model = profile.build_model(variant)
        out = model(inputs)
        assert out.shape == (8, out_dim), variant
        loss = profile.loss(out, targets)
        assert loss.shape == () and torch.isfinite(loss)
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ConfigError) as info:
        profile.build_model("resnet152")
    assert "resnet152" in info.value.message
    assert all(v in info.value.message for v in profile.model_variants)


def test_default_models_match_flamby(shared_data: Path) -> None:
    heart = _profile("heart_disease", shared_data).build_model()
    assert sum(p.numel() for p in heart.parameters()) == 14  # Linear(13 -> 1)
    out = heart(torch.randn(5, 13))
    assert ((out > 0) & (out < 1)).all()  # sigmoid probabilities
    assert sum(p.numel() for p in _profile("tcga_brca", shared_data).build_model().parameters()) == 40


# --- losses and metrics ----------------------------------------------------------------------------


def test_cox_loss_by_hand() -> None:
    s = [0.5, -1.0, 2.0]
    t = [5.0, 10.0, 2.0]
    e = [1.0, 0.0, 1.0]  # sample 1 is censored
    # risk sets (T_j >= T_i): sample 0 -> {0, 1}; sample 2 -> {0, 1, 2}; sample 1 contributes nothing.
    term0 = math.log(math.exp(0.5) + math.exp(-1.0)) - 0.5
    term2 = math.log(math.exp(0.5) + math.exp(-1.0) + math.exp(2.0)) - 2.0
    expected = (term0 + term2) / 3
    scores = torch.tensor(s, dtype=torch.float64).unsqueeze(1)
    targets = torch.tensor(list(zip(e, t, strict=True)), dtype=torch.float64)
    assert math.isclose(float(cox_loss(scores, targets)), expected, rel_tol=1e-12)
    # the row order of the batch does not matter
    perm = torch.tensor([2, 0, 1])
    assert math.isclose(float(cox_loss(scores[perm], targets[perm])), expected, rel_tol=1e-12)


def test_cox_loss_all_censored_is_zero() -> None:
    targets = torch.tensor([[0.0, 3.0], [0.0, 1.0]])
    assert float(cox_loss(torch.tensor([[1.0], [2.0]]), targets)) == 0.0


def test_c_index_sign_convention(tcga: Profile) -> None:
    times = torch.tensor([1.0, 2.0, 3.0, 4.0])
    targets = torch.stack([torch.ones(4), times], 1)
    risk_for_early_deaths = torch.tensor([[4.0], [3.0], [2.0], [1.0]])
    assert tcga.metric(risk_for_early_deaths, targets) == 1.0
    assert tcga.metric(-risk_for_early_deaths, targets) == 0.0
    assert tcga.metric_name == "c_index" and tcga.higher_is_better
    assert math.isnan(tcga.metric(torch.tensor([[float("nan")], [1.0], [2.0], [3.0]]), targets))


def test_heart_accuracy(heart: Profile) -> None:
    outputs = torch.tensor([[0.9], [0.2], [0.6], [0.4]])
    targets = torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    assert heart.metric(outputs, targets) == 0.75
    assert heart.metric_name == "accuracy"
    assert math.isclose(
        float(heart.loss(outputs, targets)),
        -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.6)) / 4,
        rel_tol=1e-6,
    )


def test_synthetic_accuracy(synthetic: Profile) -> None:
    outputs = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert synthetic.metric(outputs, torch.tensor([1, 0, 0])) == pytest.approx(2 / 3)


def test_evaluate_is_unweighted_mean_over_clients(heart: Profile) -> None:
    from afr.profiles import ClientData

    class Half(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((len(x), 1), 0.75)

    data = [
        ClientData(torch.zeros(1, 13), torch.ones(1, 1)),
        ClientData(torch.zeros(3, 13), torch.zeros(3, 1)),
    ]
    evaluation = heart.evaluate(Half(), data)
    assert evaluation.per_client == [1.0, 0.0] and evaluation.mean == 0.5


# --- scalar space and make_recipe ------------------------------------------------------------------


def test_heart_fedadam_defaults(heart: Profile) -> None:
    space = heart.scalar_space(FedAdam)
    assert space["lr"].default == 0.01 and space["server_lr"].default == 0.01 and space["tau"].default == 1e-8
    assert (space["lr"].low, space["lr"].high) == (1e-4, 0.3)  # the profile's search_space
    assert space["beta1"].default == 0.9  # not configured by the profile: the declared default
    recipe = heart.make_recipe(FedAdam)
    assert isinstance(recipe, FedAdam)
    assert (recipe.lr, recipe.server_lr, recipe.tau, recipe.beta2) == (0.01, 0.01, 1e-8, 0.999)


def test_profile_defaults_per_recipe(heart: Profile, tcga: Profile) -> None:
    assert heart.make_recipe(FedAvg).lr == 1e-3
    assert heart.make_recipe(FedProx).mu == 0.01
    assert tcga.make_recipe(FedAvg).lr == 0.1
    assert tcga.make_recipe(FedProx).mu == 0.1
    assert heart.make_recipe(FedAvg, {"lr": 0.05}).lr == 0.05


@pytest.mark.parametrize("name", profile_names())
def test_every_recipe_instantiates_on_every_profile(name: str, shared_data: Path) -> None:
    profile = _profile(name, shared_data)
    for cls in RECIPES.values():
        recipe = profile.make_recipe(cls)
        assert set(recipe.scalar_values()) == set(cls.declared_scalars())


def test_make_recipe_out_of_range(heart: Profile) -> None:
    # 0.5 is inside FedAvg's generic range [1e-5, 1] but outside heart's search_space [1e-4, 0.3]
    assert FedAvg(lr=0.5).lr == 0.5
    with pytest.raises(ConfigError) as info:
        heart.make_recipe(FedAvg, {"lr": 0.5})
    assert "lr" in info.value.message and "0.3" in info.value.message
    with pytest.raises(ConfigError, match="lr"):
        heart.make_recipe(FedAvg, {"lr": -1})


def test_make_recipe_unknown_scalar(heart: Profile) -> None:
    with pytest.raises(ConfigError) as info:
        heart.make_recipe(FedAvg, {"mu": 0.1})
    assert "mu" in info.value.message and "lr" in info.value.message and "server_lr" in info.value.message


@pytest.mark.parametrize("value", ["abc", None, [0.1], True], ids=repr)
def test_make_recipe_non_numeric_scalar(heart: Profile, value: object) -> None:
    # Scalar.check refuses non-numbers (bools included); make_recipe must report a ConfigError,
    # not crash with ValueError/TypeError nor turn True into 1.0
    with pytest.raises(ConfigError, match="server_lr"):
        heart.make_recipe(FedAvg, {"server_lr": value})


def test_bad_search_range(shared_data: Path) -> None:
    cfg = {**load_profile_config("tcga_brca"), "search_space": {"lr": {"low": 0.5, "high": 0.1}}}
    with pytest.raises(ConfigError, match="lr"):
        make_profile("tcga_brca", cfg, data_dir=shared_data).scalar_space(FedAvg)


# --- profile registry and config -------------------------------------------------------------------


def test_unknown_profile() -> None:
    with pytest.raises(ConfigError) as info:
        make_profile("nope")
    assert all(name in info.value.message for name in ("heart_disease", "tcga_brca", "synthetic"))


@pytest.mark.parametrize(
    "overrides", [{"rounds": "abc"}, {"rounds": 0}, {"batch_size": None}, {"rounds": 2.5}], ids=repr
)
def test_malformed_budget(overrides: dict) -> None:
    with pytest.raises(ConfigError):
        make_profile("synthetic", **overrides)


def test_budget_from_config(shared_data: Path) -> None:
    profile = make_profile("tcga_brca", data_dir=shared_data, rounds=2, local_steps=5)
    assert (profile.budget.rounds, profile.budget.local_steps, profile.budget.batch_size) == (2, 5, 8)
    assert make_profile("heart_disease", data_dir=shared_data).budget.rounds == 15
