"""Profile features the newer profiles rely on: budget presets, several held-out clients, device choice,
per-batch training transforms and evaluation transforms, and data profiles with a preparation step or
without a published checksum."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf

from afr.data import DataSource, RemoteFile, fetch, require, verify
from afr.engine import run_federation
from afr.errors import ChecksumError, ConfigError, DataError
from afr.profiles import (
    ClientData,
    Profile,
    apply_budget,
    budget_presets,
    load_profile_config,
    make_profile,
    resolve_device,
)
from afr.recipe import FedAvg
from afr.run import profile_config
from tests._http import serve_directory

# --- budget presets ------------------------------------------------------------------------------------


def _preset_folder(tmp_path: Path) -> Path:
    """A config folder with profile x's smoke preset (as a hydra.searchpath entry would hold it)."""
    folder = tmp_path / "conf"
    (folder / "budget_preset" / "smoke").mkdir(parents=True)
    (folder / "budget_preset" / "smoke" / "x.yaml").write_text(
        "budget_preset: smoke\nrounds: 2\nlocal_steps: 3\ngrouping: {clients: 2}\n"
    )
    return folder


def test_budget_preset_merges_over_the_profile(tmp_path: Path) -> None:
    cfg = {"name": "x", "rounds": 50, "local_steps": 100, "grouping": {"clients": 3, "heldout_groups": 1}}
    smoke = apply_budget(cfg, "smoke", [_preset_folder(tmp_path)])
    assert (smoke["rounds"], smoke["local_steps"], smoke["budget_preset"]) == (2, 3, "smoke")
    assert smoke["grouping"] == {"clients": 2, "heldout_groups": 1}  # merged deep, as Hydra merges
    assert cfg["rounds"] == 50  # the input is not modified
    assert apply_budget(cfg, "default")["rounds"] == 50
    assert apply_budget(cfg, None)["budget_preset"] == "default"


def test_unknown_budget_preset_names_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        apply_budget({"name": "x"}, "tiny", [_preset_folder(tmp_path)])
    assert "tiny" in info.value.message and "default, smoke" in info.value.message


def test_cli_checks_the_preset_and_applies_device() -> None:
    # Hydra merged the preset file (it records budget_preset); a preset the profile lacks is one line
    profile = {"name": "synthetic", "rounds": 20}
    with pytest.raises(ConfigError) as info:
        profile_config({"profile": profile, "budget": "smoke"})
    assert "'synthetic' has no budget preset 'smoke'" in info.value.message
    cfg = profile_config({"profile": {**profile, "budget_preset": "smoke"}, "budget": "smoke"})
    assert cfg["rounds"] == 20 and "device" not in cfg
    cfg = profile_config({"profile": profile, "budget": "default", "device": "cpu"})
    assert cfg["rounds"] == 20 and cfg["device"] == "cpu" and cfg["budget_preset"] == "default"


def test_explicit_profile_overrides_beat_the_preset() -> None:
    # `budget=smoke profile.rounds=7`: Hydra applies command-line overrides after the preset file
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="afr.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=["profile=ixi", "budget=smoke", "profile.rounds=7"])
        plain = compose(config_name="config", overrides=["profile=ixi", "budget=smoke"])
    merged = profile_config(OmegaConf.to_container(cfg, resolve=True))
    assert (merged["rounds"], merged["local_steps"], merged["budget_preset"]) == (7, 2, "smoke")
    assert profile_config(OmegaConf.to_container(plain, resolve=True))["rounds"] == 1


# --- device ------------------------------------------------------------------------------------------------


def test_device_resolution() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError) as info:
            resolve_device("cuda")
        assert "device=auto" in info.value.message


def test_bad_device_in_profile_config(shared_data: Path) -> None:
    with pytest.raises(ConfigError, match="device"):
        make_profile("heart_disease", data_dir=shared_data, device="gpu0")


# --- several held-out clients ---------------------------------------------------------------------------


def test_list_of_heldout_clients(shared_data: Path) -> None:
    full = make_profile("tcga_brca", data_dir=shared_data)
    held = make_profile(
        "tcga_brca", data_dir=shared_data, heldout_clients=[4, 1], heldout={"kind": "heldout_clients"}
    )
    assert held.heldout_clients == (1, 4)
    assert held.training_client_names == [n for i, n in enumerate(full.client_names) if i not in (1, 4)]
    assert held.heldout_client_names == [full.client_names[1], full.client_names[4]]
    train, test = full.data("train"), full.data("test")
    assert [len(d) for d in held.data("train")] == [len(train[k]) for k in (0, 2, 3, 5)]
    assert [len(d) for d in held.heldout_data()] == [len(train[k]) + len(test[k]) for k in (1, 4)]
    assert held.heldout_settings() == {"heldout_clients": {}}  # evaluated on the final runs themselves
    assert held.describe()["heldout_clients"] == held.heldout_client_names


def test_heldout_clients_errors(shared_data: Path) -> None:
    with pytest.raises(ConfigError, match="holds out every client"):
        make_profile("heart_disease", data_dir=shared_data, heldout_clients=[0, 1, 2, 3]).data("train")
    with pytest.raises(ConfigError, match="heldout_clients"):
        make_profile("heart_disease", data_dir=shared_data, heldout_clients=[0, 9]).data("train")
    with pytest.raises(ConfigError, match="needs heldout_clients"):
        make_profile(
            "heart_disease", data_dir=shared_data, heldout={"kind": "heldout_clients"}
        ).heldout_settings()


# --- training and evaluation transforms -----------------------------------------------------------------


class Shifted(Profile):
    """Inputs stored with an offset of 1000 that train_batch / eval_inputs remove; records every batch."""

    name = "shifted"
    metric_name = "accuracy"
    model_variants = {"default": lambda p: torch.nn.Linear(2, 2)}

    def __init__(self, cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.seen: list[torch.Tensor] = []
        self.eval_chunks: list[int] = []

    @property
    def client_names(self) -> list[str]:
        return ["a", "b"]

    def load_splits(self):
        gen = torch.Generator().manual_seed(0)

        def part(n: int) -> ClientData:
            x = torch.randn(n, 2, generator=gen)
            return ClientData(x + 1000.0, (x[:, 0] > 0).long())

        return [part(30), part(20)], [part(10), part(10)]

    def train_batch(self, inputs, targets, generator):
        self.seen.append(inputs.clone())
        noise = torch.rand(len(inputs), 1, generator=generator) * 1e-3
        return inputs - 1000.0 + noise, targets

    def eval_inputs(self, inputs):
        self.eval_chunks.append(len(inputs))
        return inputs - 1000.0

    def loss(self, outputs, targets):
        return torch.nn.functional.cross_entropy(outputs, targets)

    def metric(self, outputs, targets):
        return float((outputs.argmax(1) == targets).float().mean())


def _shifted() -> Shifted:
    return Shifted({"rounds": 3, "local_steps": 4, "batch_size": 5, "eval_batch_size": 3})


def test_engine_applies_train_batch_and_eval_inputs() -> None:
    profile = _shifted()
    recipe = profile.make_recipe(FedAvg, {"lr": 0.5})
    result = run_federation(profile, recipe, seed=1)
    assert len(profile.seen) == 3 * 2 * 4  # every local step of every client went through train_batch
    assert all(float(b.min()) > 900 for b in profile.seen)  # the engine hands over the stored inputs
    assert set(profile.eval_chunks) <= {3, 1, 2} and max(profile.eval_chunks) == 3  # eval_batch_size chunks
    assert result.final_val > 0.7  # learnable only once the offset is removed on both paths
    again = run_federation(_shifted(), recipe, seed=1)
    assert all(torch.equal(result.state_dict[k], again.state_dict[k]) for k in result.state_dict)


# --- data profiles with a preparation step, or without a published md5 ------------------------------


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture
def served(tmp_path: Path):
    root = tmp_path / "mirror"
    (root / "tofu").mkdir(parents=True)
    (root / "tofu" / "raw.txt").write_text("hello raw\n")
    with serve_directory(root) as url:
        yield root, url


def test_unpublished_md5_is_recorded_then_enforced(tmp_path: Path, served) -> None:
    root, url = served
    (root / "tofu" / "sub").mkdir()
    (root / "tofu" / "sub" / "nested.txt").write_text("nested\n")
    files = [
        RemoteFile(name, f"http://example.invalid/{name}", None) for name in ("raw.txt", "sub/nested.txt")
    ]
    tofu = DataSource(files)
    data = tmp_path / "data"
    fetch("tofu", tofu, data, mirror=url, progress=False)
    recorded = json.loads((data / "tofu" / ".afr-md5.json").read_text())
    assert recorded == {"raw.txt": _md5(b"hello raw\n"), "sub/nested.txt": _md5(b"nested\n")}
    assert verify("tofu", tofu, data) == {"raw.txt": True, "sub/nested.txt": True}
    requests = len(url.requests)
    fetch("tofu", tofu, data, mirror=url, progress=False)
    assert len(url.requests) == requests, "recorded files are not downloaded again"
    (data / "tofu" / "raw.txt").write_text("tampered\n")
    assert verify("tofu", tofu, data) == {"raw.txt": False, "sub/nested.txt": True}
    (root / "tofu" / "raw.txt").write_text("the source changed\n")
    with pytest.raises(ChecksumError) as info:
        fetch("tofu", tofu, data, mirror=url, progress=False)
    assert recorded["raw.txt"] in info.value.message
    assert not (data / "tofu" / "raw.txt.part").exists()


def test_profile_with_a_preparation_step(tmp_path: Path, served) -> None:
    _, url = served
    calls: list[Path] = []

    def prepare(folder: Path, *, progress: bool = True) -> None:
        calls.append(folder)
        (folder / "ready.txt").write_text((folder / "raw.txt").read_text().upper())

    tofu = DataSource(
        (RemoteFile("raw.txt", "http://example.invalid/raw.txt", None),),
        is_prepared=lambda folder: (folder / "ready.txt").is_file(),
        prepare=prepare,
    )
    data = tmp_path / "data"
    with pytest.raises(DataError) as info:
        require("tofu_prepared", tofu, data)
    assert "afr data fetch tofu_prepared" in info.value.message
    (tmp_path / "mirror" / "tofu_prepared").mkdir()
    (tmp_path / "mirror" / "tofu_prepared" / "raw.txt").write_text("abc\n")
    fetch("tofu_prepared", tofu, data, mirror=url, progress=False)
    assert (data / "tofu_prepared" / "ready.txt").read_text() == "ABC\n" and len(calls) == 1
    assert require("tofu_prepared", tofu, data) == data / "tofu_prepared"
    fetch(
        "tofu_prepared", tofu, data, mirror=url, progress=False
    )  # prepared already: nothing downloaded or redone
    assert len(calls) == 1


def test_shipped_profiles_have_budget_presets_that_apply() -> None:
    from afr.profiles import profile_names

    for name in profile_names():
        cfg = load_profile_config(name)
        assert "budgets" not in cfg  # presets live in budget_preset/<preset>/<profile>.yaml only
        for preset in budget_presets(name):
            merged = apply_budget(cfg, preset)
            assert merged["budget_preset"] == preset
            assert all(int(merged[k]) >= 1 for k in ("rounds", "local_steps", "batch_size"))


def test_validation_carve_falls_back_when_classes_outnumber_validation_rows() -> None:
    profile = _shifted()
    many_classes = ClientData(torch.zeros(20, 2), torch.arange(10).repeat(2))  # 10 classes x 2, 4 val rows
    profile.stratify_labels = lambda data: data.targets.numpy()  # type: ignore[method-assign]
    fit, val = profile._carve(many_classes, 0)
    assert len(val) == 4 and len(fit) == 16 and not set(fit) & set(val)
