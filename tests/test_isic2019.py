"""isic2019: preprocessing from raw fixtures, loader, augmentation, EfficientNet-B0, focal loss,
balanced accuracy, fetch over 127.0.0.1 (checksums, resume, nothing corrupt left) and a smoke run."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_module
from PIL import Image

from afr.data import RemoteFile
from afr.errors import ChecksumError, ConfigError, DataError
from afr.profiles import apply_budget, load_profile_config
from afr.profiles.isic2019 import Isic2019
from afr.profiles.isic2019 import fetch as prep
from afr.profiles.isic2019.dataset import augment, center_crop, normalize
from afr.profiles.isic2019.metric import CLASS_WEIGHTS, balanced_accuracy, focal_loss
from afr.profiles.isic2019.model import EfficientNet, efficientnet_b0, load_pretrained
from afr.run import train_and_test
from tests._data import fetch, require, verify
from tests._http import serve_directory
from tests.isic_fixtures import CONSTANT_RGB, IsicFixture, make_raw_isic

PROFILE = "isic2019"


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The machine's 2 cores are shared: one thread avoids oversubscription stalls (as the engine does).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> IsicFixture:
    """The raw download, laid out as ``<root>/isic2019/<file>`` (read-only for the tests: copy it)."""
    return make_raw_isic(tmp_path_factory.mktemp("raw") / PROFILE)


@pytest.fixture(scope="module")
def prepared(raw: IsicFixture, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir whose isic2019 folder has been prepared from the raw fixture."""
    root = tmp_path_factory.mktemp("prepared")
    shutil.copytree(raw.folder, root / PROFILE)
    prep.prepare(root / PROFILE, progress=False, workers=1)
    return root


def config(**overrides: object) -> dict:
    cfg = load_profile_config(PROFILE)
    cfg.update(overrides)
    return cfg


# --- preprocessing ----------------------------------------------------------------------------------


def test_shades_of_gray_by_hand() -> None:
    # Constant (200, 100, 50): the p-norm illuminant is the colour itself, |e| = sqrt(52500); every channel
    # becomes |e| / sqrt(3) = sqrt(17500) = 132.29 -> 132.
    constant = np.empty((4, 5, 3), dtype=np.uint8)
    constant[:] = (200, 100, 50)
    assert (prep.shades_of_gray(constant) == 132).all()

    # Red is 200 in one pixel of 100, else 0; green and blue are 200 everywhere. e_R = 200 / 100^(1/6),
    # e_G = e_B = 200, |e| = 297.69; gains |e| / (e_c sqrt 3). The red pixel's 200 * gain_R = 370.3 is
    # clipped to 255 (FLamby's astype(uint8) would wrap it around); green/blue: |e| / sqrt 3 = 171.9 -> 171.
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    image[..., 1:] = 200
    image[0, 0, 0] = 200
    e_red = 200 / 100 ** (1 / 6)
    norm = math.sqrt(e_red**2 + 2 * 200**2)
    assert 200 * norm / (e_red * math.sqrt(3)) > 255
    assert norm == pytest.approx(297.69, abs=0.01) and int(200 * norm / (200 * math.sqrt(3))) == 171
    out = prep.shades_of_gray(image)
    assert out[0, 0, 0] == 255 and (out[..., 0].ravel()[1:] == 0).all()
    assert (out[..., 1:] == 171).all()

    black = np.zeros((3, 3, 3), dtype=np.uint8)
    assert (prep.shades_of_gray(black) == 0).all()


def test_resize_shorter_side() -> None:
    for size, expected in (((60, 45), (298, 224)), ((45, 60), (224, 298)), ((300, 224), (300, 224))):
        assert prep.resize_shorter_side(Image.new("RGB", size)).size == expected


def test_prepare_layout(raw: IsicFixture, prepared: Path) -> None:
    folder = prepared / PROFILE
    assert prep.is_prepared(folder)
    assert require(PROFILE, prepared) == folder
    images = folder / prep.IMAGE_DIR
    assert sorted(p.stem for p in images.iterdir()) == sorted(raw.kept)
    assert not set(raw.dropped) & {p.stem for p in images.iterdir()}
    assert not (folder / (prep.IMAGE_DIR + ".partial")).exists()
    for path in list(images.iterdir())[:10]:
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "RGB" and min(img.size) == 224
    with Image.open(images / f"{raw.constant_image}.jpg") as img:
        pixels = np.asarray(img).reshape(-1, 3).astype(int)
    # The decoded fixture is (200, 100, 50) up to JPEG rounding: colour constancy turns it grey (~132).
    assert CONSTANT_RGB == (200, 100, 50) and np.abs(pixels - 132).max() <= 2

    table = pd.read_csv(folder / prep.METADATA_FL)
    assert sorted(table["image"]) == sorted(raw.kept)
    centers = dict(zip(table["image"], table["center"], strict=True))
    for k in range(6):
        assert {centers[n] for n in raw.train[k] + raw.test[k]} == {k}
    summary = json.loads((folder / ".afr-prepared.json").read_text())
    assert summary["images"] == 72 and list(summary["per_center"].values()) == [12] * 6


def test_prepare_is_idempotent(prepared: Path) -> None:
    images = prepared / PROFILE / prep.IMAGE_DIR
    before = {p.name: p.stat().st_mtime_ns for p in images.iterdir()}
    prep.prepare(prepared / PROFILE, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in images.iterdir()} == before


def test_prepare_interrupted_then_resumed(
    raw: IsicFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / PROFILE
    shutil.copytree(raw.folder, folder)
    real = prep.preprocess_image
    calls = []

    def flaky(data: bytes) -> bytes:
        calls.append(1)
        if len(calls) > 20:
            raise KeyboardInterrupt  # the user stops the run mid-way
        return real(data)

    monkeypatch.setattr(prep, "preprocess_image", flaky)
    with pytest.raises(KeyboardInterrupt):
        prep.prepare(folder, progress=False, workers=1)
    assert not prep.is_prepared(folder)
    assert not (folder / prep.IMAGE_DIR).exists() and not (folder / prep.METADATA_FL).exists()
    partial = folder / (prep.IMAGE_DIR + ".partial")
    assert len(list(partial.glob("*.jpg"))) == 20 and not list(partial.glob(".*"))

    counted = []
    monkeypatch.setattr(prep, "preprocess_image", lambda data: counted.append(1) or real(data))
    prep.prepare(folder, progress=False, workers=2)
    assert len(counted) == 72 - 20  # resumed: the 20 finished images are not redone
    assert prep.is_prepared(folder) and not partial.exists()
    assert len(list((folder / prep.IMAGE_DIR).iterdir())) == 72


@pytest.mark.parametrize("damage", ["split_center", "ham_row", "two_labels", "split_unknown_image"])
def test_prepare_rejects_inconsistent_tables(raw: IsicFixture, tmp_path: Path, damage: str) -> None:
    folder = tmp_path / PROFILE
    shutil.copytree(raw.folder, folder)
    if damage == "split_center":
        split = pd.read_csv(folder / "train_test_split")
        split.loc[0, "center"] = (split.loc[0, "center"] + 1) % 6
        split.to_csv(folder / "train_test_split", index=False)
        words = ["train_test_split", split.loc[0, "image"]]
    elif damage == "split_unknown_image":
        split = pd.read_csv(folder / "train_test_split")
        split.loc[0, "image"] = raw.dropped[0]
        split.to_csv(folder / "train_test_split", index=False)
        words = ["train_test_split", raw.dropped[0]]
    elif damage == "ham_row":
        ham = pd.read_csv(folder / "HAM10000_metadata")
        ham.iloc[1:].to_csv(folder / "HAM10000_metadata", index=False)
        words = ["no center", ham.loc[0, "image_id"], "HAM10000_metadata"]
    else:
        truth = pd.read_csv(folder / "ISIC_2019_Training_GroundTruth.csv")
        row = truth.index[truth["image"] == raw.train[0][0]][0]
        truth.loc[row, ["MEL", "NV"]] = 1.0
        truth.to_csv(folder / "ISIC_2019_Training_GroundTruth.csv", index=False)
        words = ["exactly one"]
    with pytest.raises(DataError) as info:
        prep.prepare(folder, progress=False)
    assert all(word in info.value.message for word in words), info.value.message
    assert "afr data fetch isic2019" in info.value.message
    assert not (folder / prep.IMAGE_DIR).exists() and not (folder / (prep.IMAGE_DIR + ".partial")).exists()


# --- loader, augmentation ---------------------------------------------------------------------------


def test_loader_shapes_centers_labels(raw: IsicFixture, prepared: Path) -> None:
    profile = Isic2019(config(), prepared)
    assert profile.client_names == [
        "BCN", "HAM_vidir_molemax", "HAM_vidir_modern", "HAM_rosendahl", "MSK", "HAM_vienna_dias",
    ]  # fmt: skip
    train, test = profile.data("train"), profile.data("test")
    assert [len(c) for c in train] == [8] * 6 and [len(c) for c in test] == [4] * 6
    for part, labels in ((train, raw.train_labels), (test, raw.test_labels)):
        for client, expected in zip(part, labels, strict=True):
            assert client.inputs.dtype == torch.uint8 and client.inputs.shape[1:] == (3, 224, 224)
            assert client.targets.dtype == torch.int64 and client.targets.tolist() == expected
    # The constant image is client 0's: a grey square after colour constancy.
    first = raw.train[0].index(raw.constant_image)
    assert (train[0].inputs[first].int() - 132).abs().max() <= 2
    # Validation is carved from train only, stratified on the label.
    fit, val = profile.data("fit"), profile.data("val")
    assert [len(f) + len(v) for f, v in zip(fit, val, strict=True)] == [8] * 6
    assert all(
        sorted(v.targets.unique().tolist()) == sorted(set(lab))
        for v, lab in zip(val, raw.train_labels, strict=True)
    )


def test_loader_cap_and_heldout(raw: IsicFixture, prepared: Path) -> None:
    profile = Isic2019(config(max_images_per_client=3, heldout_clients=4), prepared)
    assert profile.training_client_names == ["BCN", "HAM_vidir_molemax", "HAM_vidir_modern", "HAM_rosendahl",
                                             "HAM_vienna_dias"]  # fmt: skip
    assert [len(c) for c in profile.data("train")] == [3] * 5
    (held,) = profile.heldout_data()
    assert len(held) == 6 and held.targets.tolist() == raw.train_labels[4][:3] + raw.test_labels[4][:3]
    # a campaign sets center 3 aside from the search (heldout.clients); its final runs are evaluated on it
    campaign = Isic2019(config(), prepared).for_campaign()
    assert campaign.heldout_clients == (3,) and campaign.heldout_settings() == {"heldout_clients": {}}


def test_missing_or_broken_data(raw: IsicFixture, prepared: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        Isic2019(config(), tmp_path).data("train")
    assert "afr data fetch isic2019" in info.value.message and str(tmp_path / PROFILE) in info.value.message

    broken = tmp_path / "broken"
    shutil.copytree(prepared / PROFILE, broken / PROFILE)
    (broken / PROFILE / prep.IMAGE_DIR / f"{raw.test[5][0]}.jpg").unlink()
    with pytest.raises(DataError) as info:
        Isic2019(config(), broken).data("train")
    assert raw.test[5][0] in info.value.message and "afr data fetch isic2019" in info.value.message


def test_eval_inputs_center_crop_and_normalise(prepared: Path) -> None:
    profile = Isic2019(config(), prepared)
    images = profile.data("test")[0].inputs
    out = profile.eval_inputs(images)
    assert out.dtype == torch.float32 and out.shape == (len(images), 3, 200, 200)
    crop = images[:, :, 12:212, 12:212].float() / 255
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(out, (crop - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1), atol=1e-6)
    assert center_crop(torch.zeros(1, 3, 300, 224), 200).shape == (1, 3, 200, 200)


def test_augment_without_random_steps_is_an_integer_crop() -> None:
    images = torch.randint(
        0, 256, (3, 3, 224, 224), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    out = augment(images, torch.Generator().manual_seed(0), p=0.0)
    reference = normalize(images.float())
    offsets = set()
    for i in range(3):
        # Locate the window by its first row, then check the whole window.
        first_row = {
            (top, left): float((out[i, 0, 0] - reference[i, 0, top, left : left + 200]).abs().max())
            for top in range(25)
            for left in range(25)
        }
        top, left = min(first_row, key=first_row.get)
        window = reference[i, :, top : top + 200, left : left + 200]
        assert float((out[i] - window).abs().max()) < 1e-3  # exactly one crop window, no interpolation blur
        offsets.add((top, left))
    assert len(offsets) > 1  # the windows are random


def test_augment_is_seeded_and_random() -> None:
    images = torch.full((4, 3, 224, 224), 255, dtype=torch.uint8)
    images[:, :, :, :112] = 30
    first = augment(images, torch.Generator().manual_seed(7), p=1.0)
    again = augment(images, torch.Generator().manual_seed(7), p=1.0)
    other = augment(images, torch.Generator().manual_seed(8), p=1.0)
    assert first.shape == (4, 3, 200, 200) and first.dtype == torch.float32
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.isfinite(first).all()
    # CoarseDropout: every sample has >= one 16 x 16 hole of black pixels (normalised 0).
    black = normalize(torch.zeros(1, 3, 1, 1)).view(3, 1, 1)
    holes = (first == black).all(dim=1).sum(dim=(1, 2))
    assert (holes >= 256).all()
    # Rotation moved the vertical edge: some rows differ from the first row.
    assert any(not torch.equal(first[i, 0, 0], first[i, 0, 150]) for i in range(4))


def test_train_batch_hook(prepared: Path) -> None:
    profile = Isic2019(config(), prepared)
    client = profile.data("fit")[1]
    inputs, targets = profile.train_batch(client.inputs, client.targets, torch.Generator().manual_seed(0))
    assert inputs.shape == (len(client), 3, 200, 200) and inputs.dtype == torch.float32
    assert torch.equal(targets, client.targets)


# --- model, loss, metric ----------------------------------------------------------------------------


def test_efficientnet_b0_forward_backward() -> None:
    torch.manual_seed(0)
    model = efficientnet_b0(8)
    assert sum(p.numel() for p in model.parameters()) == 4_017_796  # FL_FACTS: ~4.02 M
    assert len(model._blocks) == 16 and model._fc.in_features == 1280
    x = torch.randn(2, 3, 200, 200)
    out = model(x)
    assert out.shape == (2, 8)
    focal_loss(out, torch.tensor([0, 5]), torch.tensor(CLASS_WEIGHTS)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))  # no dropout / stochastic depth at evaluation


def test_profile_model_variants(prepared: Path) -> None:
    profile = Isic2019(config(), prepared)
    assert set(profile.model_variants) == {"default", "efficientnet_b0", "efficientnet_tiny"}
    assert sum(p.numel() for p in profile.build_model().parameters()) == 4_017_796
    smoke = Isic2019(apply_budget(config(), "smoke"), prepared)
    tiny = smoke.build_model()
    assert isinstance(tiny, EfficientNet) and sum(p.numel() for p in tiny.parameters()) == 126_180
    assert tiny(torch.randn(2, 3, 200, 200)).shape == (2, 8)


def test_pretrained_weights(prepared: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(prepared / PROFILE, data_dir / PROFILE)
    profile = Isic2019(config(pretrained=True), data_dir)
    with pytest.raises(DataError) as info:
        profile.build_model()
    assert "python -m afr.profiles.isic2019 weights" in info.value.message
    assert "pretrained=false" in info.value.message

    torch.manual_seed(3)
    imagenet = EfficientNet(1000)  # same layout as efficientnet_pytorch's checkpoint
    torch.save(imagenet.state_dict(), data_dir / PROFILE / prep.WEIGHTS.filename)
    model = profile.build_model()
    own, saved = model.state_dict(), imagenet.state_dict()
    assert all(torch.equal(own[k], saved[k]) for k in own if not k.startswith("_fc."))
    assert own["_fc.weight"].shape == (8, 1280)

    torch.save(
        EfficientNet(8, width=0.25, depth=0.25).state_dict(), data_dir / PROFILE / prep.WEIGHTS.filename
    )
    with pytest.raises(DataError) as info:
        profile.build_model()
    assert "wrong shape" in info.value.message and "delete the file" in info.value.message
    with pytest.raises(ValueError, match="unexpected"):
        load_pretrained(efficientnet_b0(), {**saved, "extra.weight": torch.zeros(1)})


def test_focal_loss_by_hand() -> None:
    alpha = torch.tensor(CLASS_WEIGHTS)
    # Uniform logits over 8 classes: p_y = 1/8, loss = alpha_y * (7/8)^2 * ln 8.
    uniform = torch.zeros(1, 8)
    expected_mel = 5.5813 * (7 / 8) ** 2 * math.log(8)  # 8.8855...
    assert focal_loss(uniform, torch.tensor([0]), alpha).item() == pytest.approx(expected_mel, rel=1e-5)
    expected_df = 101.0707 * (7 / 8) ** 2 * math.log(8)
    assert focal_loss(uniform, torch.tensor([5]), alpha).item() == pytest.approx(expected_df, rel=1e-5)
    # Logits (ln 3, 0, -1e4, ...): p_MEL = 3/4 -> 5.5813 (1/4)^2 ln(4/3); averaged with a uniform NV row.
    logits = torch.full((2, 8), -1e4)
    logits[0, 0], logits[0, 1] = math.log(3), 0.0
    logits[1] = 0.0
    by_hand = (5.5813 * (1 / 4) ** 2 * math.log(4 / 3) + 2.0472 * (7 / 8) ** 2 * math.log(8)) / 2
    assert focal_loss(logits, torch.tensor([0, 1]), alpha).item() == pytest.approx(by_hand, rel=1e-5)
    # gamma = 0 and unit alpha: plain cross-entropy.
    rand = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0, 3, 7, 2, 2])
    ce = torch.nn.functional.cross_entropy(rand, target)
    assert focal_loss(rand, target, torch.ones(8), gamma=0.0).item() == pytest.approx(ce.item(), rel=1e-6)


def onehot_logits(predictions: list[int]) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predictions), 8).float()


@pytest.mark.parametrize(
    ("targets", "predictions", "expected"),
    [
        ([0, 0, 0, 1], [0, 0, 1, 1], (2 / 3 + 1) / 2),  # recall 2/3 for MEL, 1 for NV
        ([0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6, 7], 1.0),
        ([0, 0, 1, 1, 2, 2], [1, 1, 1, 1, 1, 1], 1 / 3),  # always NV: recall 0, 1, 0
        ([1] * 9 + [0], [1] * 10, 0.5),  # accuracy 0.9, but MEL is never found
        ([0, 0], [0, 3], 0.5),  # a predicted class absent from the truth only costs the miss
        ([7, 7, 5], [7, 5, 5], (1 / 2 + 1) / 2),
    ],
)
def test_balanced_accuracy_by_hand(targets: list[int], predictions: list[int], expected: float) -> None:
    assert balanced_accuracy(onehot_logits(predictions), torch.tensor(targets)) == pytest.approx(expected)


def test_balanced_accuracy_empty_is_nan(prepared: Path) -> None:
    assert math.isnan(balanced_accuracy(torch.zeros(0, 8), torch.zeros(0, dtype=torch.int64)))
    profile = Isic2019(config(), prepared)
    assert profile.metric(onehot_logits([2, 2]), torch.tensor([2, 2])) == 1.0


# --- configuration -----------------------------------------------------------------------------------


def test_yaml_is_flamby_budget() -> None:
    cfg = load_profile_config(PROFILE)
    assert (cfg["rounds"], cfg["local_steps"], cfg["batch_size"]) == (9, 100, 64)
    assert cfg["rounds"] == ((18413 // 6) // 64) * 20 // 100
    assert cfg["device"] == "auto" and cfg["heldout"] == {"kind": "heldout_clients", "clients": [3]}
    assert cfg["pretrained"] is False and cfg["default_model"] == "efficientnet_b0"
    recipes = cfg["recipes"]
    assert recipes["fedavg"] == {"lr": 0.01} and recipes["fedprox"] == {"lr": 0.01, "mu": 0.001}
    assert recipes["fedadam"]["server_lr"] == recipes["fedyogi"]["server_lr"] == 0.0031623
    assert recipes["fedadagrad"]["server_lr"] == 0.0316228
    smoke = apply_budget(cfg, "smoke")
    assert (smoke["rounds"], smoke["local_steps"], smoke["batch_size"]) == (2, 2, 8)
    assert smoke["default_model"] == "efficientnet_tiny" and smoke["max_images_per_client"] == 64


@pytest.mark.parametrize(
    ("key", "value"),
    [("default_model", "resnet"), ("pretrained", "yes"), ("max_images_per_client", 0), ("device", "tpu")],
)
def test_bad_config(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        Isic2019(config(**{key: value}))
    assert key.split("_")[0] in info.value.message


# --- fetch over 127.0.0.1 -----------------------------------------------------------------------------


@pytest.fixture
def served(raw: IsicFixture, monkeypatch: pytest.MonkeyPatch):
    """A local server with the raw fixture; FILES point at it with the fixture's own md5s where the real
    registry has published ones (HAM metadata, split) and None where it has none (ISIC's files)."""
    files = tuple(
        RemoteFile(f.filename, f.url, None if f.md5 is None else md5(raw.folder / f.filename))
        for f in prep.FILES
    )
    monkeypatch.setattr(prep, "SOURCE", replace(prep.SOURCE, files=files))
    with serve_directory(raw.folder.parent) as url:
        yield url


def test_registry_matches_flamby_and_isic() -> None:
    names = [f.filename for f in prep.FILES]
    assert names == [
        "ISIC_2019_Training_Input.zip", "ISIC_2019_Training_Metadata.csv",
        "ISIC_2019_Training_GroundTruth.csv", "HAM10000_metadata", "train_test_split",
    ]  # fmt: skip
    assert all(f.url.startswith("https://isic-challenge-data.s3.amazonaws.com/2019/") for f in prep.FILES[:3])
    assert all("owkin/FLamby/edacf54d5211520583b0133d55ac39b6fda8324b" in f.url for f in prep.FILES[3:])
    assert [f.md5 for f in prep.FILES] == [None, None, None, "8f85fb1aa29d80a2797247e434deb79d",
                                            "f65e84dcd1e6b69edf55960899b22d81"]  # fmt: skip


def test_fetch_downloads_then_prepares(raw: IsicFixture, served, tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        require(PROFILE, tmp_path)
    assert "afr data fetch isic2019" in info.value.message

    fetch(PROFILE, tmp_path, mirror=served, progress=False)
    folder = tmp_path / PROFILE
    assert prep.is_prepared(folder) and require(PROFILE, tmp_path) == folder
    recorded = json.loads((folder / ".afr-md5.json").read_text())
    assert recorded == {f.filename: md5(raw.folder / f.filename) for f in prep.FILES if f.md5 is None}
    assert all(verify(PROFILE, tmp_path).values())
    assert not list(folder.glob("*.part"))
    count = len(served.requests)
    fetch(PROFILE, tmp_path, mirror=served, progress=False)
    assert len(served.requests) == count  # prepared: nothing downloaded again


def test_fetch_interrupted_download_resumes(raw: IsicFixture, served, tmp_path: Path) -> None:
    folder = tmp_path / PROFILE
    zip_name = "ISIC_2019_Training_Input.zip"
    served.fail_after_bytes[zip_name] = 4000
    with pytest.raises(DataError) as info:
        fetch(PROFILE, tmp_path, mirror=served, progress=False)
    assert not isinstance(info.value, ChecksumError) and zip_name in info.value.message
    assert (folder / (zip_name + ".part")).stat().st_size == 4000
    assert not (folder / zip_name).exists() and not prep.is_prepared(folder)
    assert not (folder / prep.IMAGE_DIR).exists() and not (folder / ".afr-md5.json").exists()

    served.fail_after_bytes.clear()
    fetch(PROFILE, tmp_path, mirror=served, progress=False)
    resumed = [s for s in served.requests if s.path.endswith(zip_name)][-1]
    assert resumed.range == "bytes=4000-" and resumed.status == 206
    assert md5(folder / zip_name) == md5(raw.folder / zip_name)
    assert prep.is_prepared(folder) and not list(folder.glob("*.part"))


def test_fetch_checksum_mismatch_leaves_nothing_corrupt(raw: IsicFixture, served, tmp_path: Path) -> None:
    folder = tmp_path / PROFILE
    served.corrupt.add("train_test_split")  # a file with a published md5
    with pytest.raises(ChecksumError) as info:
        fetch(PROFILE, tmp_path, mirror=served, progress=False)
    assert (
        "train_test_split" in info.value.message
        and md5(raw.folder / "train_test_split") in info.value.message
    )
    assert not (folder / "train_test_split").exists() and not list(folder.glob("*.part"))
    assert not prep.is_prepared(folder) and not (folder / prep.IMAGE_DIR).exists()
    # The files before it arrived whole; those without a published md5 had theirs recorded.
    assert md5(folder / "ISIC_2019_Training_Input.zip") == md5(raw.folder / "ISIC_2019_Training_Input.zip")

    # A recorded md5 binds later downloads: a corrupted copy of the zip is refused.
    (folder / "ISIC_2019_Training_Input.zip").unlink()
    served.corrupt = {"ISIC_2019_Training_Input.zip"}
    with pytest.raises(ChecksumError) as info:
        fetch(PROFILE, tmp_path, mirror=served, progress=False)
    assert md5(raw.folder / "ISIC_2019_Training_Input.zip") in info.value.message
    assert not (folder / "ISIC_2019_Training_Input.zip").exists() and not list(folder.glob("*.part"))
    assert not prep.is_prepared(folder)

    served.corrupt = set()
    fetch(PROFILE, tmp_path, mirror=served, progress=False)
    assert prep.is_prepared(folder) and all(verify(PROFILE, tmp_path).values())


def test_fetch_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    served_dir = tmp_path / "server" / PROFILE
    served_dir.mkdir(parents=True)
    checkpoint = served_dir / prep.WEIGHTS.filename
    torch.save(EfficientNet(1000, width=0.25, depth=0.25).state_dict(), checkpoint)
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    data_dir = tmp_path / "data"
    with serve_directory(served_dir.parent) as url:
        monkeypatch.setattr(prep, "_WEIGHTS_SHA256_PREFIX", "00000000" if digest[:8] != "00000000" else "1")
        with pytest.raises(ChecksumError) as info:
            prep.fetch_weights(data_dir, mirror=url, progress=False)
        assert "python -m afr.profiles.isic2019 weights" in info.value.message
        assert not (data_dir / PROFILE / prep.WEIGHTS.filename).exists()

        monkeypatch.setattr(prep, "_WEIGHTS_SHA256_PREFIX", digest[:8])
        url.fail_after_bytes[prep.WEIGHTS.filename] = 1000
        with pytest.raises(DataError):
            prep.fetch_weights(data_dir, mirror=url, progress=False)
        url.fail_after_bytes.clear()
        path = prep.fetch_weights(data_dir, mirror=url, progress=False)
        assert url.requests[-1].range == "bytes=1000-"
    assert path == data_dir / PROFILE / prep.WEIGHTS.filename and md5(path) == md5(checkpoint)


# --- a smoke run through afr.run -----------------------------------------------------------------------


def test_smoke_fedavg_run(prepared: Path, tmp_path: Path) -> None:
    with initialize_config_module(config_module="afr.conf", version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[f"profile={PROFILE}", "budget=smoke", f"data_dir={prepared}", "seeds=1", "device=cpu"],
        )
    summary = train_and_test(cfg, tmp_path)
    assert summary["profile"] == PROFILE and summary["recipe"] == "fedavg"
    assert summary["metric"] == "balanced_accuracy" and summary["scalars"]["lr"] == 0.01
    assert summary["budget"] == {"rounds": 2, "local_steps": 2, "batch_size": 8}
    (row,) = summary["seeds"]
    assert row["steps"] == 6 * 2 * 2
    assert len(row["test_per_client"]) == 6 and all(0.0 <= v <= 1.0 for v in row["test_per_client"])
    assert json.loads((tmp_path / "results.json").read_text())["mean"] == summary["mean"]
