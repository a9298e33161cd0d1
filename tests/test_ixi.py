"""ixi: FLamby's U-Net, soft Dice loss and metric (hand-checked), preprocessing, prepare from the official
zip layout, the loader, fetch through a 127.0.0.1 server, and a smoke FedAvg run through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from afr.data import RemoteFile
from afr.errors import ChecksumError, DataError
from afr.profiles import make_profile
from afr.profiles._segmentation import soft_dice_loss, soft_dice_score
from afr.profiles.ixi import fetch as prep
from afr.profiles.ixi.dataset import IMAGE_SHAPE, preprocess_subject
from afr.profiles.ixi.model import UNet3D
from tests._data import fetch, require, verify
from tests._http import serve_directory
from tests.imaging_fixtures import IXI_SUBJECTS, ixi_subject_name, md5_of, write_ixi_raw

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFR_DATA_DIR", str(tmp_path / "default"))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with the IXI fixture downloaded and prepared (shared by the read-only tests)."""
    root = tmp_path_factory.mktemp("ixi_data")
    write_ixi_raw(root / "ixi")
    prep.prepare(root / "ixi", progress=False)
    return root


def _two_channel(mask: torch.Tensor) -> torch.Tensor:
    """(N, D, H, W) 0/1 mask -> (N, 2, D, H, W) one-hot float (background, foreground)."""
    return torch.stack([1 - mask, mask], dim=1).float()


# --- model -------------------------------------------------------------------------------------------


def test_unet_matches_flamby() -> None:
    model = UNet3D()
    assert sum(p.numel() for p in model.parameters()) == 246_156  # FL_FACTS §2: FLamby's IXI U-Net
    first = model.encoders[0][0]
    assert first[0].bias is not None and not any(isinstance(m, torch.nn.BatchNorm3d) for m in first)
    x = torch.randn(2, 1, *IMAGE_SHAPE)
    out = model(x)
    assert out.shape == (2, 2, *IMAGE_SHAPE)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(2, *IMAGE_SHAPE))
    loss = soft_dice_loss(out, _two_channel((x[:, 0] > 0).float()))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


# --- loss and metric, hand-checked -----------------------------------------------------------------


def test_dice_perfect_disjoint_and_two_of_four() -> None:
    truth = torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 4, 1, 1)
    perfect = _two_channel(truth)
    assert soft_dice_score(perfect, perfect) == pytest.approx(1.0, abs=1e-6)
    assert float(soft_dice_loss(perfect, perfect)) == pytest.approx(0.0, abs=1e-6)

    disjoint = _two_channel(1 - truth)
    assert soft_dice_score(disjoint, perfect) == pytest.approx(0.0, abs=1e-9)
    assert float(soft_dice_loss(disjoint, perfect)) == pytest.approx(1.0, abs=1e-9)

    # prediction [1, 0, 1, 0] vs truth [1, 1, 0, 0]: per channel TP = FP = FN = 1 -> 2/(2+1+1) = 1/2
    half = _two_channel(torch.tensor([1.0, 0.0, 1.0, 0.0]).reshape(1, 4, 1, 1))
    assert soft_dice_score(half, perfect) == pytest.approx(0.5, abs=1e-6)
    assert float(soft_dice_loss(half, perfect)) == pytest.approx(0.5, abs=1e-6)


def test_dice_is_soft_and_averages_over_samples_and_channels() -> None:
    truth = _two_channel(torch.tensor([1.0, 1.0, 0.0, 0.0]).reshape(1, 4, 1, 1))
    uncertain = torch.full_like(truth, 0.5)
    # per channel Σpg = 1, Σp = Σg = 2: Dice 2·1/(2+2) = 1/2, no thresholding of the probabilities
    assert soft_dice_score(uncertain, truth) == pytest.approx(0.5, abs=1e-6)
    assert float(soft_dice_loss(uncertain, truth)) == pytest.approx(0.5, abs=1e-6)
    # two samples, Dice 1 and 0.5 on both channels: mean 0.75
    both = torch.cat([truth, truth])
    assert soft_dice_score(torch.cat([truth, uncertain]), both) == pytest.approx(0.75, abs=1e-6)


def test_empty_channels() -> None:
    empty = torch.zeros(1, 2, 2, 2, 2)
    assert soft_dice_score(empty, empty) == 1.0  # both empty: FLamby counts it as perfect
    predicted = empty.clone()
    predicted[0, 1, 0, 0, 0] = 1.0
    # channel 0 empty in both (1), channel 1 predicted where nothing is true (0)
    assert soft_dice_score(predicted, empty) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        soft_dice_score(empty, empty[:, :1])


# --- preprocessing -------------------------------------------------------------------------------------


def test_preprocessing_matches_flamby_steps() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(20, 12, 14, generator=generator) * 100
    label = (torch.rand(20, 12, 14, generator=generator) > 0.3).float()
    x, y = preprocess_subject(image.numpy(), label.numpy())
    assert x.shape == (1, *IMAGE_SHAPE) and y.shape == (2, *IMAGE_SHAPE)
    resized = F.interpolate(image[None, None], size=IMAGE_SHAPE, mode="area")[0]
    expected = (resized - resized.mean()) / resized.std(unbiased=False)
    torch.testing.assert_close(x, expected, atol=1e-4, rtol=1e-4)
    # label: area-resized, then one-hot of the truncated value: foreground only where fully inside
    area = F.interpolate(label[None, None], size=IMAGE_SHAPE, mode="area")[0, 0]
    torch.testing.assert_close(y[1], (area >= 1.0).float())
    torch.testing.assert_close(y.sum(dim=0), torch.ones(IMAGE_SHAPE))


# --- prepare and loader -------------------------------------------------------------------------------


def test_prepare_extracts_flamby_layout(prepared: Path) -> None:
    folder = prepared / "ixi"
    assert prep.is_prepared(folder)
    subjects = prep.subject_dirs(folder)
    assert [s.name for s in subjects] == sorted(ixi_subject_name(p, c) for p, c, _ in IXI_SUBJECTS)
    first = subjects[0]
    assert sorted(p.name for p in first.iterdir()) == ["T1", "label"]  # T2 and README skipped
    assert (first / "T1" / f"{first.name}_image.nii.gz").is_file()
    assert (first / "label" / f"{first.name}_label.nii.gz").is_file()
    assert not list(folder.glob(".ixi-extract-*"))
    before = (folder / ".afr-ixi-prepared.json").stat().st_mtime_ns
    prep.prepare(folder, progress=False)  # idempotent: nothing rewritten
    assert (folder / ".afr-ixi-prepared.json").stat().st_mtime_ns == before
    assert require("ixi", prepared) == folder


def test_loader_rows_shapes_and_dtypes(prepared: Path) -> None:
    profile = make_profile("ixi", data_dir=prepared)
    train, test = profile.data("train"), profile.data("test")
    assert profile.client_names == ["Guys", "HH", "IOP"]
    assert [len(c) for c in train] == [3, 2, 2] and [len(c) for c in test] == [1, 1, 1]
    for client in train + test:
        assert client.inputs.shape[1:] == (1, *IMAGE_SHAPE) and client.inputs.dtype == torch.float16
        assert client.targets.shape[1:] == (2, *IMAGE_SHAPE) and client.targets.dtype == torch.uint8
        assert torch.equal(client.targets.sum(dim=1), torch.ones_like(client.targets[:, 0]))
        assert abs(float(client.inputs[0].float().mean())) < 1e-2  # z-scored per volume
    assert [len(f) + len(v) for f, v in zip(profile.data("fit"), profile.data("val"), strict=True)] == [
        3,
        2,
        2,
    ]
    x, y = profile.train_batch(train[0].inputs[:2], train[0].targets[:2], torch.Generator())
    assert x.dtype == y.dtype == torch.float32
    assert profile.eval_inputs(test[0].inputs).dtype == torch.float32
    evaluation = profile.evaluate(profile.build_model(), test)
    assert len(evaluation.per_client) == 3 and 0.0 <= evaluation.mean <= 1.0


def test_heldout_center(prepared: Path) -> None:
    profile = make_profile("ixi", data_dir=prepared, heldout_clients=2)
    assert profile.training_client_names == ["Guys", "HH"]
    (held,) = profile.heldout_data()
    assert len(held) == 3  # IOP: 2 train + 1 test subjects


def test_missing_data_and_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        make_profile("ixi", data_dir=tmp_path).data("train")
    assert "afr data fetch ixi" in info.value.message

    folder = tmp_path / "ixi"
    write_ixi_raw(folder)
    (folder / prep.ZIP_NAME).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError) as info:
        prep.prepare(folder, progress=False)
    assert prep.ZIP_NAME in info.value.message and "afr data fetch ixi" in info.value.message
    assert not prep.is_prepared(folder)
    assert sorted(p.name for p in folder.iterdir()) == [prep.ZIP_NAME, prep.METADATA]  # nothing half-written


def test_subject_without_split_row(tmp_path: Path) -> None:
    folder = tmp_path / "ixi"
    write_ixi_raw(folder)
    lines = (folder / prep.METADATA).read_text().splitlines()
    (folder / prep.METADATA).write_text("\n".join(line for line in lines if not line.startswith("13,")))
    prep.prepare(folder, progress=False)
    with pytest.raises(DataError) as info:
        make_profile("ixi", data_dir=tmp_path).data("train")
    assert "IXI013-HH-1013" in info.value.message and prep.METADATA in info.value.message


# --- fetch through a local server ------------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The fixture files served at <url>/ixi/<file>, registered with their md5s."""
    served = tmp_path / "mirror"
    write_ixi_raw(served / "ixi")
    files = tuple(RemoteFile(f.filename, f.url, md5_of(served / "ixi" / f.filename)) for f in prep.FILES)
    monkeypatch.setattr(prep, "SOURCE", replace(prep.SOURCE, files=files))
    with serve_directory(served) as url:
        yield url


def test_fetch_checksum_mismatch_leaves_nothing(tmp_path: Path, mirror) -> None:
    mirror.corrupt.add(prep.ZIP_NAME)
    with pytest.raises(ChecksumError) as info:
        fetch("ixi", tmp_path / "data", mirror=mirror, progress=False)
    assert prep.ZIP_NAME in info.value.message and "fix:" in info.value.message
    folder = tmp_path / "data" / "ixi"
    assert not (folder / prep.ZIP_NAME).exists() and not list(folder.glob("*.part"))
    assert not prep.is_prepared(folder) and not (folder / "7kd5wj7v7p-3").exists()

    mirror.corrupt.clear()
    fetch("ixi", tmp_path / "data", mirror=mirror, progress=False)
    assert prep.is_prepared(folder) and all(verify("ixi", tmp_path / "data").values())


def test_fetch_interrupted_download_resumes(tmp_path: Path, mirror) -> None:
    folder = tmp_path / "data" / "ixi"
    mirror.fail_after_bytes[prep.ZIP_NAME] = 3000
    with pytest.raises(DataError) as info:
        fetch("ixi", tmp_path / "data", mirror=mirror, progress=False)
    assert not isinstance(info.value, ChecksumError)
    assert (folder / (prep.ZIP_NAME + ".part")).stat().st_size == 3000
    assert not (folder / prep.ZIP_NAME).exists() and not prep.is_prepared(folder)

    mirror.fail_after_bytes.clear()
    fetch("ixi", tmp_path / "data", mirror=mirror, progress=False)
    resumed = [s for s in mirror.requests if s.path.endswith(prep.ZIP_NAME)][-1]
    assert resumed.range == "bytes=3000-" and resumed.status == 206
    assert prep.is_prepared(folder) and not list(folder.glob("*.part"))
    assert [len(c) for c in make_profile("ixi", data_dir=tmp_path / "data").data("train")] == [3, 2, 2]
    requests = len(mirror.requests)
    fetch("ixi", tmp_path / "data", mirror=mirror, progress=False)  # prepared: nothing downloaded
    assert len(mirror.requests) == requests


def test_unpublished_md5_is_recorded_then_enforced(tmp_path: Path, mirror, monkeypatch) -> None:
    files = tuple(RemoteFile(f.filename, f.url, None) for f in prep.SOURCE.files)
    monkeypatch.setattr(prep, "SOURCE", replace(prep.SOURCE, files=files))
    fetch("ixi", tmp_path / "data", mirror=mirror, progress=False)
    folder = tmp_path / "data" / "ixi"
    recorded = json.loads((folder / ".afr-md5.json").read_text())
    assert recorded[prep.ZIP_NAME] == md5_of(folder / prep.ZIP_NAME)
    assert all(verify("ixi", tmp_path / "data").values())
    (folder / prep.METADATA).write_text("Patient ID,Manufacturer,Split\n")
    assert verify("ixi", tmp_path / "data")[prep.METADATA] is False


# --- a smoke run through the CLI -----------------------------------------------------------------------


def test_smoke_fedavg_through_the_cli(prepared: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    args = ["profile=ixi", "budget=smoke", "recipe=fedavg", "seeds=1", f"data_dir={prepared}"]
    result = subprocess.run(
        [sys.executable, "-m", "afr.run", *args, f"hydra.run.dir={tmp_path / 'run'}", "tensorboard=false"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "results.json").read_text())
    assert summary["profile"] == "ixi" and summary["budget"] == {
        "rounds": 1,
        "local_steps": 2,
        "batch_size": 2,
    }
    (row,) = summary["seeds"]
    assert row["steps"] == 3 * 2 and 0.0 <= row["test"] <= 1.0 and len(row["test_per_client"]) == 3
