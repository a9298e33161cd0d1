"""kits19: FLamby's silos, the official file list, our preprocessing, the loader and patch sampling, the
nnU-Net-style U-Net, Dice + CE loss and the KiTS Dice metric (hand-checked), fetch through a 127.0.0.1
server, and a smoke FedAvg run through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from afr.data import RemoteFile
from afr.errors import ChecksumError, ConfigError, DataError
from afr.profiles import make_profile
from afr.profiles._segmentation import dice_ce_loss, kits_batched_dice, kits_dice
from afr.profiles.kits19 import fetch as prep
from afr.profiles.kits19.model import FLAMBY_FILTERS, SMALL_FILTERS, nnunet_3d
from tests._data import fetch, verify
from tests._http import serve_directory
from tests.imaging_fixtures import kits_cases, md5_of, write_kits_case, write_kits_raw, write_kits_sites

REPO = Path(__file__).resolve().parents[1]
SMALL = {"patch_size": [32, 32, 32], "unet_filters": [4, 8, 16, 32, 32, 32]}


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFR_DATA_DIR", str(tmp_path / "default"))


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The raw fixture of all 96 silo cases, laid out as <dir>/kits19/<file>."""
    root = tmp_path_factory.mktemp("kits_raw")
    write_kits_raw(root / "kits19")
    return root


@pytest.fixture(scope="module")
def prepared(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kits_prepared")
    (root / "kits19").mkdir()
    for path in (raw / "kits19").iterdir():
        os.link(path, root / "kits19" / path.name)
    prep.prepare(root / "kits19", progress=False)
    return root


# --- silos and the official file list ----------------------------------------------------------------


def test_flamby_silos_and_split_sizes(raw: Path) -> None:
    silos = prep.silos_from_sites(raw / "kits19" / prep.SITES_FILE)
    assert [(site, tuple(cases)) for site, cases in silos] == list(prep.SILOS)
    assert [site for site, _ in silos] == [7, 13, 14, 55, 57, 67]
    sizes = [tuple(map(len, prep.split_silo(cases))) for _, cases in silos]
    assert sizes == [(9, 3), (11, 3), (9, 3), (9, 3), (12, 4), (24, 6)]  # FL_FACTS §2: 74 / 22 cases
    train, test = prep.split_silo(list(prep.SILOS[0][1]))
    assert train == [21, 38, 55, 62, 74, 129, 164, 173, 175] and test == [181, 195, 208]  # file order


def test_silo_rule_on_a_handmade_site_table(tmp_path: Path) -> None:
    rows = ["case,site_id"]
    rows += [f"case_{c:05d},{3 if c < 10 else 1}" for c in range(19)]  # site 3: 10 cases, site 1: 9
    rows += [f"case_{c:05d},{2}" for c in range(19, 210)]  # 191 cases at site 2
    rows += [f"case_{c:05d},{1}" for c in range(210, 300)]  # beyond the 210 labelled cases: ignored
    (tmp_path / "sites.csv").write_text("\n".join(rows))
    silos = prep.silos_from_sites(tmp_path / "sites.csv")
    assert [site for site, _ in silos] == [2, 3]  # ordered by site id; site 1 has only 9 labelled cases
    assert silos[1][1] == list(range(10))
    (tmp_path / "bad.csv").write_text("id,site\n1,2\n")
    with pytest.raises(DataError, match="case,site_id"):
        prep.silos_from_sites(tmp_path / "bad.csv")


def test_official_files() -> None:
    files = {f.filename: f for f in prep.FILES}
    assert len(files) == 1 + 2 * 96
    assert files[prep.SITES_FILE].md5 is not None and "owkin/FLamby" in files[prep.SITES_FILE].url
    for case in kits_cases():
        imaging, segmentation = files[prep.imaging_name(case)], files[prep.segmentation_name(case)]
        assert imaging.md5 is None and imaging.url.endswith(f"images/case_{case:05d}.nii.gz")
        assert segmentation.md5 == prep.SEGMENTATION_MD5[case]
        assert f"data/case_{case:05d}/segmentation.nii.gz" in segmentation.url


# --- preprocessing ---------------------------------------------------------------------------------------


def test_prepare_layout_and_preprocessing(prepared: Path) -> None:
    folder = prepared / "kits19"
    assert prep.is_prepared(folder)
    manifest = prep.read_manifest(folder)
    assert manifest is not None and [s["site"] for s in manifest["silos"]] == [7, 13, 14, 55, 57, 67]
    assert manifest["silos"][0]["test"] == [181, 195, 208]
    assert not list(folder.glob(".preprocessed-*"))
    with np.load(folder / prep.PREPARED_DIR / "case_00021.npz") as npz:
        image, seg, loc1, loc2 = npz["image"], npz["seg"], npz["loc1"], npz["loc2"]
    # raw (8, 32, 32) at (6, 1.5625, 1.5625) mm; 2 zero rows cropped -> (8, 30, 32); resampled -> (16, 60, 64)
    assert image.shape == seg.shape == (16, 60, 64) and image.dtype == np.float16 and seg.dtype == np.uint8
    assert set(np.unique(seg).tolist()) == {0, 1, 2}
    assert len(loc1) == (seg == 1).sum() and (seg[tuple(loc2.T)] == 2).all()
    stats = manifest["intensity"]
    assert stats["p00_5"] < stats["mean"] < stats["p99_5"]
    assert float(image.max()) <= (stats["p99_5"] - stats["mean"]) / stats["std"] + 1e-2  # clipped, z-scored

    before = (folder / prep.MANIFEST).stat().st_mtime_ns
    prep.prepare(folder, progress=False)  # idempotent
    assert (folder / prep.MANIFEST).stat().st_mtime_ns == before


def test_preprocess_case_crops_clips_and_normalises() -> None:
    image = np.full((4, 6, 5), 100.0, dtype=np.float32)
    image[:, 0, :] = 0.0  # a zero border row: cropped
    image[1, 3, 2] = 500.0  # above the 99.5th percentile: clipped
    seg = np.zeros(image.shape, dtype=np.uint8)
    seg[1:3, 2:4, 1:3] = 1
    seg[2, 3, 2] = 2
    stats = {"mean": 80.0, "std": 10.0, "p00_5": 50.0, "p99_5": 120.0}
    arrays = prep.preprocess_case(image, seg, prep.TARGET_SPACING, stats)  # already at the target spacing
    assert arrays["image"].shape == arrays["seg"].shape == (4, 5, 5)
    expected = np.full((4, 5, 5), 2.0)  # (100 - 80) / 10
    expected[1, 2, 2] = 4.0  # min(500, 120) -> (120 - 80) / 10
    np.testing.assert_allclose(arrays["image"].astype(np.float32), expected, atol=1e-3)
    assert (arrays["seg"] == seg[:, 1:, :]).all()
    assert arrays["loc2"].tolist() == [[2, 2, 2]] and len(arrays["loc1"]) == (seg == 1).sum()
    coarse = (prep.TARGET_SPACING[0] * 2, *prep.TARGET_SPACING[1:])  # slices twice as thick: twice as many
    resampled = prep.preprocess_case(image, seg, coarse, stats)
    assert resampled["image"].shape == (8, 5, 5) and set(np.unique(resampled["seg"]).tolist()) == {0, 1, 2}


def test_prepare_refuses_bad_raw_data_and_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "kits19"
    write_kits_sites(folder)
    with pytest.raises(DataError) as info:
        prep.prepare(folder, progress=False)
    assert "case_00021_imaging.nii.gz" in info.value.message and "afr data fetch kits19" in info.value.message

    write_kits_raw(folder)
    _, seg_path = write_kits_case(folder, 38)
    import nibabel as nib

    mask = np.asarray(nib.load(seg_path).dataobj).copy()
    mask[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(mask, np.diag([6.0, 1.5625, 1.5625, 1.0])), seg_path)
    with pytest.raises(DataError) as info:
        prep.prepare(folder, progress=False)
    assert "case 00038" in info.value.message and "3" in info.value.message
    assert not prep.is_prepared(folder)
    assert not (folder / prep.PREPARED_DIR).exists() and not (folder / prep.MANIFEST).exists()
    assert not list(folder.glob(".preprocessed-*"))


# --- loader and patches ----------------------------------------------------------------------------------


def test_loader_rows_patches_and_sampling(prepared: Path) -> None:
    profile = make_profile("kits19", data_dir=prepared, augment=False, **SMALL)
    train, test = profile.data("train"), profile.data("test")
    assert profile.client_names == ["site7", "site13", "site14", "site55", "site57", "site67"]
    assert [len(c) for c in train] == [9, 11, 9, 9, 12, 24] and [len(c) for c in test] == [3, 3, 3, 3, 4, 6]
    assert train[0].inputs.tolist() == [21, 38, 55, 62, 74, 129, 164, 173, 175]
    for client in train + test:
        assert client.targets.shape[1:] == (1, 32, 32, 32) and client.targets.dtype == torch.uint8
        assert (client.targets > 0).flatten(1).any(dim=1).all()  # evaluation patches centred on the kidney
    x = profile.eval_inputs(test[0].inputs)
    assert x.shape == (3, 1, 32, 32, 32) and x.dtype == torch.float32

    cases = train[0].inputs[:4]
    images, labels = profile.train_batch(cases, train[0].targets[:4], torch.Generator().manual_seed(1))
    assert images.shape == labels.shape == (4, 1, 32, 32, 32)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert all((labels[i] > 0).any() for i in (1, 3))  # odd samples: centred on a foreground voxel
    again = profile.train_batch(cases, train[0].targets[:4], torch.Generator().manual_seed(1))
    assert torch.equal(images, again[0]) and torch.equal(labels, again[1])  # seeded per client


def test_augmentation_keeps_shapes_and_labels(prepared: Path) -> None:
    profile = make_profile("kits19", data_dir=prepared, **SMALL)
    train = profile.data("train")
    generator = torch.Generator().manual_seed(3)
    for _ in range(3):
        images, labels = profile.train_batch(train[5].inputs[:2], train[5].targets[:2], generator)
        assert images.shape == labels.shape == (2, 1, 32, 32, 32)
        assert torch.isfinite(images).all() and set(torch.unique(labels).tolist()) <= {0, 1, 2}


def test_bad_patch_size() -> None:
    with pytest.raises(ConfigError, match="multiples"):
        make_profile("kits19", patch_size=[30, 32, 32])
    with pytest.raises(ConfigError, match="bottleneck"):
        make_profile("kits19", patch_size=[16, 32, 32])


def test_heldout_silo(prepared: Path) -> None:
    profile = make_profile("kits19", data_dir=prepared, heldout_clients=0, **SMALL)
    assert profile.num_clients == 5
    (held,) = profile.heldout_data()
    assert sorted(held.inputs.tolist()) == sorted(prep.SILOS[0][1])
    profile.forget_test()
    assert set(profile._eval_images) == {c for d in profile.data("train") for c in d.inputs.tolist()}


# --- model --------------------------------------------------------------------------------------------


def test_models_forward_backward() -> None:
    default = nnunet_3d(FLAMBY_FILTERS)
    # Generic_UNet has 30,785,984 (FL_FACTS): + 3,840 conv biases (cancelled by InstanceNorm) + 2,304
    # unused deep-supervision heads - 3 (DynUNet's output-conv bias)
    assert sum(p.numel() for p in default.parameters()) == 30_785_984 - 3_840 - 2_304 + 3
    assert sum(p.numel() for p in nnunet_3d(SMALL_FILTERS).parameters()) < 2_000_000
    x = torch.randn(1, 1, 32, 32, 32)
    out = default(x)
    assert out.shape == (1, 3, 32, 32, 32)
    dice_ce_loss(out, torch.randint(0, 3, (1, 1, 32, 32, 32))).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in default.parameters())
    with pytest.raises(ConfigError):
        nnunet_3d((8, 16))


# --- loss and metric, hand-checked -----------------------------------------------------------------------


def _labels(*values: int) -> torch.Tensor:
    return torch.tensor(values).reshape(1, 1, len(values), 1, 1)


def test_kits_dice_hand_checked() -> None:
    truth = _labels(2, 2, 1, 0)
    assert kits_dice(truth, truth) == pytest.approx(1.0, abs=1e-5)
    assert kits_dice(_labels(0, 0, 0, 1), _labels(1, 2, 0, 0)) == 0.0  # disjoint
    # kidney only, prediction [1, 0, 1, 0] vs truth [1, 1, 0, 0]: composite Dice 2/4; no tumour anywhere
    # scores 0 (eps 1e-5 in FLamby's denominator) -> (0.5 + 0) / 2
    assert kits_dice(_labels(1, 0, 1, 0), _labels(1, 1, 0, 0)) == pytest.approx(0.25, abs=1e-5)
    # composite: both [1, 1, 1, 0] -> 1; tumour: [1, 0, 0, 0] vs [1, 1, 0, 0] -> 2/3; mean 5/6
    assert kits_dice(_labels(2, 1, 1, 0), truth) == pytest.approx(5 / 6, abs=1e-5)


def test_kits_metric_averages_batches_of_two() -> None:
    truth = torch.cat([_labels(2, 2, 1, 0), _labels(1, 1, 0, 0), _labels(1, 0, 0, 0)])
    predicted = torch.cat([_labels(2, 1, 1, 0), _labels(1, 1, 0, 0), _labels(0, 0, 0, 0)])
    logits = F.one_hot(predicted[:, 0], 3).permute(0, 4, 1, 2, 3).float() * 10
    first = kits_dice(predicted[:2], truth[:2])  # one batch of two cases, Dice over both together
    assert kits_batched_dice(logits, truth) == pytest.approx((first + 0.0) / 2, abs=1e-6)
    profile = make_profile("kits19")
    assert profile.metric(logits, truth.to(torch.uint8)) == pytest.approx((first + 0.0) / 2, abs=1e-6)


def test_dice_ce_loss_matches_nnunet_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, 4, generator=generator)
    labels = torch.randint(0, 3, (2, 1, 4, 4, 4), generator=generator)
    probs = logits.softmax(dim=1)
    one_hot = F.one_hot(labels[:, 0], 3).permute(0, 4, 1, 2, 3).float()
    tp = (probs * one_hot).sum(dim=(0, 2, 3, 4))  # batch Dice: sums over the batch too
    denominator = probs.sum(dim=(0, 2, 3, 4)) + one_hot.sum(dim=(0, 2, 3, 4))
    dice = ((2 * tp + 1e-5) / (denominator + 1e-5))[1:].mean()  # background excluded
    expected = F.cross_entropy(logits, labels[:, 0]) + 1 - dice
    torch.testing.assert_close(dice_ce_loss(logits, labels), expected, atol=1e-6, rtol=1e-6)
    perfect = F.one_hot(labels[:, 0], 3).permute(0, 4, 1, 2, 3).float() * 50
    assert float(dice_ce_loss(perfect, labels)) < 1e-4


# --- fetch through a local server ------------------------------------------------------------------------


@pytest.fixture
def mirror(raw: Path, monkeypatch: pytest.MonkeyPatch):
    """The raw fixture served at <url>/kits19/<file>; segmentation md5s are the fixture's."""
    files = tuple(
        RemoteFile(f.filename, f.url, None if f.md5 is None else md5_of(raw / "kits19" / f.filename))
        for f in prep.FILES
    )
    monkeypatch.setattr(prep, "SOURCE", replace(prep.SOURCE, files=files))
    with serve_directory(raw) as url:
        yield url


def test_fetch_checksum_mismatch_then_resume(tmp_path: Path, mirror) -> None:
    data = tmp_path / "data"
    folder = data / "kits19"
    bad, cut = prep.segmentation_name(38), prep.imaging_name(55)
    mirror.corrupt.add(bad)
    with pytest.raises(ChecksumError) as info:
        fetch("kits19", data, mirror=mirror, progress=False)
    assert bad in info.value.message
    assert not (folder / bad).exists() and not list(folder.glob("*.part"))
    assert not prep.is_prepared(folder) and not (folder / prep.PREPARED_DIR).exists()

    mirror.corrupt.clear()
    mirror.fail_after_bytes[cut] = 1000
    with pytest.raises(DataError) as info:
        fetch("kits19", data, mirror=mirror, progress=False)
    assert cut in info.value.message and not isinstance(info.value, ChecksumError)
    assert (folder / (cut + ".part")).stat().st_size == 1000 and not (folder / cut).exists()
    assert not prep.is_prepared(folder)

    mirror.fail_after_bytes.clear()
    fetch("kits19", data, mirror=mirror, progress=False)
    resumed = [s for s in mirror.requests if s.path.endswith(cut)][-1]
    assert resumed.range == "bytes=1000-" and resumed.status == 206
    assert prep.is_prepared(folder) and not list(folder.glob("*.part"))
    assert all(verify("kits19", data).values())
    recorded = json.loads((folder / ".afr-md5.json").read_text())
    assert recorded[cut] == md5_of(folder / cut)  # no published md5: the first download's is recorded
    assert [len(c) for c in make_profile("kits19", data_dir=data, **SMALL).data("test")] == [3, 3, 3, 3, 4, 6]


# --- a smoke run through the CLI -----------------------------------------------------------------------


def test_smoke_fedavg_through_the_cli(prepared: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    args = ["profile=kits19", "budget=smoke", "recipe=fedavg", "seeds=1", f"data_dir={prepared}"]
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
    assert summary["profile"] == "kits19" and summary["budget"] == {
        "rounds": 1,
        "local_steps": 2,
        "batch_size": 2,
    }
    (row,) = summary["seeds"]
    assert row["steps"] == 6 * 2 and 0.0 <= row["test"] <= 1.0 and len(row["test_per_client"]) == 6
