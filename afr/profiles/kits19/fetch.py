"""Fed-KiTS19: the official KiTS19 CT volumes and masks of FLamby's 96 silo cases, preprocessed our way.

Official files (laid out flat in the profile folder):

* ``anony_sites.csv`` — the anonymised site of each KiTS19 case, shipped by FLamby (pinned to commit
  ``edacf54d``, md5 published here). Silos follow FLamby's rule (:func:`silos_from_sites`): among the
  first 210 cases, the sites with at least 10 cases, ordered by site id (7, 13, 14, 55, 57, 67); in each
  silo the first ``int(0.8 n)`` cases in file order train, the rest test -> 74 / 22 cases.
* ``case_XXXXX_imaging.nii.gz`` — the CT volume of each silo case from the source the official kits19
  repository's ``starter_code/get_imaging.py`` downloads from (the ``neheller/KiTS-Challenge-Imaging``
  dataset, ``images/case_XXXXX.nii.gz``). No checksum is published: ``md5=None``, so the md5 of the first
  complete download is recorded in ``<folder>/.afr-md5.json`` and enforced afterwards.
* ``case_XXXXX_segmentation.nii.gz`` — the case's mask (0 background, 1 kidney, 2 tumour) from the kits19
  repository pinned to commit ``456b2934``; these blobs last changed on 2019-12-23 (the label fixes
  FLamby's ``Task064_KiTS_labelsFixed`` uses). The md5s are those of the pinned git blobs.

Preprocessing (:func:`prepare`) is our own simplified nnU-Net-v1-style CT pipeline, not nnU-Net itself:

1. crop image and mask to the bounding box of the image's nonzero voxels (nnU-Net also fills holes in
   that mask);
2. resample to the fixed spacing :data:`TARGET_SPACING` (3.0 mm along the slice axis, 0.78125 mm in
   plane; trilinear for the image, nearest for the mask). nnU-Net v1 plans the spacing from the
   dataset (median spacing, anisotropy rule) and resamples with third-order splines (order 0 across
   slices for anisotropic data) and one-hot linear interpolation for masks;
3. like nnU-Net's CT scheme: clip to the 0.5 / 99.5 percentiles of the foreground (kidney + tumour)
   intensities of all 96 cases (every 10th foreground voxel) and z-score with their mean and std;
4. store ``preprocessed/case_XXXXX.npz`` (``image`` float16, ``seg`` uint8, ``spacing``, and up to
   10,000 sampled voxel locations per foreground class, ``loc1`` / ``loc2``, for foreground-forced patch
   sampling, like nnU-Net's ``class_locations``) and the manifest ``kits19_prepared.json`` (silos,
   splits, intensity statistics). Everything is written to a temporary folder renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ...data import DataSource, RemoteFile
from ...errors import DataError
from .._nifti import read_nifti

__all__ = [
    "SOURCE",
    "FILES",
    "SILOS",
    "SITES_FILE",
    "TARGET_SPACING",
    "PREPARED_DIR",
    "MANIFEST",
    "imaging_name",
    "segmentation_name",
    "silos_from_sites",
    "split_silo",
    "preprocess_case",
    "read_manifest",
    "is_prepared",
    "prepare",
]

SITES_FILE = "anony_sites.csv"
_FLAMBY_COMMIT = "edacf54d5211520583b0133d55ac39b6fda8324b"
_KITS19_COMMIT = "456b293435b25303bbc7995f094f83a0afdff0eb"
_SITES_URL = f"https://raw.githubusercontent.com/owkin/FLamby/{_FLAMBY_COMMIT}/flamby/datasets/fed_kits19/metadata/{SITES_FILE}"
_IMAGING_URL = (
    "https://huggingface.co/datasets/neheller/KiTS-Challenge-Imaging/resolve/main/images/case_{:05d}.nii.gz"
)
_SEGMENTATION_URL = f"https://raw.githubusercontent.com/neheller/kits19/{_KITS19_COMMIT}/data/case_{{:05d}}/segmentation.nii.gz"

TARGET_SPACING = (3.0, 0.78125, 0.78125)
"""Voxel spacing (mm) after resampling: slice axis, then the two in-plane axes (KiTS19's array order)."""
PREPARED_DIR = "preprocessed"
MANIFEST = "kits19_prepared.json"
LABELS = (0, 1, 2)
FOREGROUND_STEP = 10
MAX_LOCATIONS = 10_000
_FIX = "run `afr data fetch kits19` (downloads what is missing, then preprocesses)"

SILOS: tuple[tuple[int, tuple[int, ...]], ...] = (
    (7, (21, 38, 55, 62, 74, 129, 164, 173, 175, 181, 195, 208)),
    (13, (0, 27, 51, 86, 101, 108, 116, 139, 141, 142, 155, 161, 165, 198)),
    (14, (3, 14, 33, 42, 98, 100, 102, 103, 120, 154, 156, 157)),
    (55, (53, 67, 70, 75, 78, 87, 113, 126, 135, 140, 159, 188)),
    (57, (11, 20, 39, 56, 69, 73, 77, 80, 119, 122, 136, 152, 153, 177, 184, 209)),
    (
        67,
        (
            1,
            2,
            5,
            16,
            22,
            26,
            30,
            47,
            49,
            52,
            59,
            63,
            68,
            71,
            76,
            89,
            91,
            93,
            96,
            110,
            114,
            115,
            118,
            132,
            144,
            146,
            147,
            148,
            151,
            158,
        ),
    ),
)
SEGMENTATION_MD5: dict[int, str] = {
    21: "2665db097354798701b02280495e213b",
    38: "62137a5fd7a96813d374a2ef2fd04ce6",
    55: "455ee72b43a2c125bc29e9d5a88b2cd7",
    62: "a0ef9c5399ae8ba6c244307cf14b89ae",
    74: "d7291936b4821b2d22dffd6c4f411af8",
    129: "201b37ff66d174456b5c9125b2ba2915",
    164: "23cc4f89f112bb255193aa8fda1d490e",
    173: "f5deb414dac8e9c0f858ce17198a972f",
    175: "f78efcf31c9f77d0ff3a6b8b8c7e23b3",
    181: "050d91789eedb280b015b770d55de6bc",
    195: "69a2952105abde7b0fe2256a585093cd",
    208: "8393b9862e2f2aff1ee2e12d5ed8a8b1",
    0: "6843dab9cdec4b6bae0730d6f4ceb771",
    27: "cd50a5330bdd78df3fc9846a037fc5eb",
    51: "e92078f71c03d0ccc1cb849fd004e08a",
    86: "7e73fe40bd04f8a5e7e3681c7c653e9c",
    101: "8567b96ae47034a14ae225538ccb1948",
    108: "cf9d9ab7fac11bf10b896e3ac7c9b220",
    116: "6267af696a03be6a837256be469b2e5f",
    139: "a73c54f039b894c38064c68373955c4c",
    141: "0bd10430a0c0e5e7cb6178984182d9e0",
    142: "c4aa3682a01724b8c9d6bc5cf2cdc13a",
    155: "8c96851924d51b2ffabc6667c81438f5",
    161: "7affedd5193b5d6ef9e6e0d2caf539e0",
    165: "1f4ada30404880a37812efd192acb0d1",
    198: "84e130c5cc3e1706ba05e156a9ec321f",
    3: "b1dc628a1604bc51bc1b6b3f9aee3ba7",
    14: "f5cb646a27cc644f560279a53083ecb2",
    33: "1aeeeb0b5844107ff5e86e108c6ee2e4",
    42: "09b63f15a723edf8860ddcd0d470cd11",
    98: "686b785f030c29731e4637f9a9418297",
    100: "6a6d641af18aaa540a96a53f04b1389a",
    102: "217d3e2d71b96c16266579f859433719",
    103: "45fdf1a2a7b619934c921f1e9257bf74",
    120: "05c4813ea4f955fa93e1e5dd03cec15a",
    154: "ee72d309389ef0004650d320ac640128",
    156: "e9aca9715d41944badda57c2fc5681ac",
    157: "855d61cea29fa443e9ef6982b8939050",
    53: "f313be963b12762f110fd0fe04fed87f",
    67: "9d0b0be79931a010a9aa4f88a423e696",
    70: "d1567224f6878b374781de86376141e3",
    75: "9eb8d95fa18bb652c475959cee287a38",
    78: "1bf4410bfa55daa61b4c68882659cd5f",
    87: "22b13d0b32ac62b58143d56b1eeb5b68",
    113: "5d5687338b11923fd7f9bbed03a7cb7d",
    126: "0ad73c78c4f6b16e6a1f873e3a0f8c78",
    135: "af34e035565028ddcfc90655e69ecea1",
    140: "5759c8d4e4713cc3bae684a1606b5f85",
    159: "d9d5bb7d89d63c08329e3a5cddc3c82e",
    188: "cba5a835203b6003242bdc4e5ccf8125",
    11: "55a7a908e7790f860c3735420a9e7076",
    20: "18aa5e567e8fa1fea4eeeaf30168b68f",
    39: "392fae7f8de1df7496451933dc9204e5",
    56: "d76fe84365bb42347552b002d531ef2b",
    69: "c832a9d943b8d9ab48af0c8a46074bce",
    73: "32cf29e0b456868f6bce1a125b156c3a",
    77: "1e7670124f976d2678075a21a62baf14",
    80: "64e0123c437bdd85d1fb9bec384a12b0",
    119: "fa01e2f06b51985b9981fdb33346862b",
    122: "71526e8fa4e9ed961c0eeca6f0f209e9",
    136: "7077f9e587054357d4a32cf7f49543fd",
    152: "2c2e59c674da1068ac176dfd5dad7e3b",
    153: "03779dd368ceb2aa881593f61c527c7a",
    177: "3da0d1b7f2b7d8e9a5f6a1fae248cc6c",
    184: "3934c2a478bb8c8f072c5cf6789ca08a",
    209: "3da82a3ee78b0d04ad6a31ee1c00c695",
    1: "0a6a715a3b4ca210c3387be1e19a20b4",
    2: "7b2c580e9eb218ff1ffb8b02cd10008e",
    5: "505fa0e09780341d5216cdf3004e4ad2",
    16: "034790113a16e51d24eb7f34fc681860",
    22: "558d78692df78bf7bd9fa981414e47a4",
    26: "14b0b85ad1690322b5a996d03ecd41b3",
    30: "326f527b09a76dac6eb9aea99e8aa936",
    47: "3327622fe71858b7ba58d66d1e7e01a3",
    49: "c6e03ce49a0a2ccfba28a2608a63ea29",
    52: "39c8f30496ac1b540c319740f506b84c",
    59: "4e4c9504651172da6e892627bef5b12b",
    63: "4bf521d5c4019fd9342566f30f98ae1c",
    68: "6af2da08a4b4ebbcef3af0af2b935967",
    71: "746cb4379b16c0442f90bc698fab5719",
    76: "f3ed9df554262aef329ca6ccaf8821f6",
    89: "af48467613850ce99cf377edaf603627",
    91: "8681d25d8b6e550d05bece18232e1c6b",
    93: "b3c41daf2f6aa7009349d4cd5535af49",
    96: "0fd2df16112be47387d7394ae63344af",
    110: "eeadb89e56b154dfa33c13ab0a30cdb6",
    114: "db75f3e935e6efb054ab110235e8cea6",
    115: "f6f8a96be26c3572a5f7e943b37a86f4",
    118: "9968ef71c1869d1e4dc468f8ccb26e3d",
    132: "a28f8cd20188f182613c2ff215bd0401",
    144: "f37da7ea657ab7c02003574c491735dc",
    146: "28fe57024b97e59a38bce1d38951056b",
    147: "d13c102cea7bbb794b28697c98a410d0",
    148: "b462bf852ff011129af5cd797abea712",
    151: "6a44b9d725e45a54882d2ec2fbde717f",
    158: "b81f242ce5fe131f579b99d9f49319b4",
}
"""md5 of each silo case's mask at the pinned kits19 commit (computed from its git blob)."""


def imaging_name(case: int) -> str:
    return f"case_{case:05d}_imaging.nii.gz"


def segmentation_name(case: int) -> str:
    return f"case_{case:05d}_segmentation.nii.gz"


def _case_files(case: int) -> tuple[RemoteFile, RemoteFile]:
    return (
        RemoteFile(imaging_name(case), _IMAGING_URL.format(case), None),
        RemoteFile(segmentation_name(case), _SEGMENTATION_URL.format(case), SEGMENTATION_MD5[case]),
    )


FILES: tuple[RemoteFile, ...] = (
    RemoteFile(SITES_FILE, _SITES_URL, "08a512e9f84b12f0da5573c0facacfbc"),
    *(f for _, cases in SILOS for case in sorted(cases) for f in _case_files(case)),
)


def silos_from_sites(path: Path) -> list[tuple[int, list[int]]]:
    """FLamby's silos from ``anony_sites.csv``: (site id, case numbers in file order) for every site with
    at least 10 of the first 210 cases (the labelled ones), ordered by site id."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", where=str(path), fix=_FIX) from exc
    if list(frame.columns[:2]) != ["case", "site_id"]:
        raise DataError(f"{path} must have the columns case,site_id", where=str(path), fix=_FIX)
    by_site: dict[int, list[int]] = {}
    for case, site in zip(frame["case"][:210], frame["site_id"][:210], strict=True):
        try:
            number = int(str(case).removeprefix("case_"))
            by_site.setdefault(int(site), []).append(number)
        except ValueError as exc:
            raise DataError(f"{path}: malformed row {case},{site}", where=str(path), fix=_FIX) from exc
    return [(site, cases) for site, cases in sorted(by_site.items()) if len(cases) >= 10]


def split_silo(cases: list[int]) -> tuple[list[int], list[int]]:
    """FLamby's split of one silo: the first ``int(0.8 n)`` cases train, the rest test."""
    n_train = int(0.8 * len(cases))
    return list(cases[:n_train]), list(cases[n_train:])


def _read_case(folder: Path, case: int) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    image, spacing = read_nifti(folder / imaging_name(case), _FIX)
    seg, _ = read_nifti(folder / segmentation_name(case), _FIX)
    if image.shape != seg.shape:
        raise DataError(
            f"case {case:05d}: image {image.shape} and mask {seg.shape} differ in shape",
            where=str(folder / segmentation_name(case)),
            fix=_FIX,
        )
    labels = np.unique(seg)
    if not set(labels.tolist()) <= set(LABELS):
        raise DataError(
            f"case {case:05d}: mask labels {labels.tolist()} outside 0 (background), 1 (kidney), 2 (tumour)",
            where=str(folder / segmentation_name(case)),
            fix=_FIX,
        )
    if min(spacing) <= 0:
        raise DataError(
            f"case {case:05d}: voxel spacing {spacing} is not positive", where=str(folder), fix=_FIX
        )
    return image, seg.astype(np.uint8), spacing


def _crop_to_nonzero(image: np.ndarray, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nonzero = image != 0
    if not nonzero.any():
        return image, seg
    box = []
    for axis in range(3):
        hits = np.flatnonzero(nonzero.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return image[tuple(box)], seg[tuple(box)]


def _resample(
    image: np.ndarray, seg: np.ndarray, spacing: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    import torch
    from monai.transforms import Resize

    shape = tuple(
        max(1, round(n * s / t)) for n, s, t in zip(image.shape, spacing, TARGET_SPACING, strict=True)
    )
    if shape == image.shape:
        return image, seg
    x = Resize(shape, mode="trilinear")(torch.from_numpy(image)[None])
    y = Resize(shape, mode="nearest")(torch.from_numpy(seg.astype(np.float32))[None])
    return np.asarray(x[0], dtype=np.float32), np.asarray(y[0]).round().astype(np.uint8)


def _locations(seg: np.ndarray, label: int, rng: np.random.Generator) -> np.ndarray:
    """Up to :data:`MAX_LOCATIONS` voxels of ``label`` (at least 1 % of them), as nnU-Net samples them."""
    where = np.argwhere(seg == label).astype(np.int32)
    if len(where) == 0:
        return np.zeros((0, 3), dtype=np.int32)
    count = max(min(MAX_LOCATIONS, len(where)), int(np.ceil(0.01 * len(where))))
    return where[np.sort(rng.choice(len(where), count, replace=False))]


def preprocess_case(
    image: np.ndarray, seg: np.ndarray, spacing: tuple[float, ...], intensity: dict[str, float]
) -> dict[str, np.ndarray]:
    """One case through steps 1-3 of the module doc -> the arrays stored in its npz."""
    image, seg = _crop_to_nonzero(image, seg)
    image, seg = _resample(image, seg, spacing)
    image = np.clip(image, intensity["p00_5"], intensity["p99_5"])
    image = (image - intensity["mean"]) / max(intensity["std"], 1e-8)
    rng = np.random.default_rng(1234)
    return {
        "image": image.astype(np.float16),
        "seg": seg,
        "spacing": np.asarray(TARGET_SPACING, dtype=np.float32),
        "loc1": _locations(seg, 1, rng),
        "loc2": _locations(seg, 2, rng),
    }


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The prepared layout's manifest, or None when there is none (or it is unreadable)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and isinstance(manifest.get("silos"), list) else None


def _npz(folder: Path, case: int) -> Path:
    return Path(folder) / PREPARED_DIR / f"case_{case:05d}.npz"


def is_prepared(folder: Path) -> bool:
    """The manifest is in place and every case it lists has its npz."""
    manifest = read_manifest(folder)
    if manifest is None:
        return False
    try:
        cases = [int(c) for silo in manifest["silos"] for c in (*silo["train"], *silo["test"])]
    except (KeyError, TypeError, ValueError):
        return False
    return bool(cases) and all(_npz(folder, c).is_file() for c in cases)


def prepare(folder: Path, *, progress: bool = True) -> None:
    """Raw NIfTI files in ``folder`` -> ``preprocessed/*.npz`` + manifest (idempotent, atomic)."""
    from tqdm import tqdm

    folder = Path(folder)
    if is_prepared(folder):
        return
    if not (folder / SITES_FILE).is_file():
        raise DataError(f"{SITES_FILE} is missing", where=str(folder), fix=_FIX)
    silos = silos_from_sites(folder / SITES_FILE)
    cases = [case for _, members in silos for case in members]
    missing = [
        n for c in cases for n in (imaging_name(c), segmentation_name(c)) if not (folder / n).is_file()
    ]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise DataError(
            f"raw KiTS19 file(s) missing: {', '.join(missing[:3])}{more}", where=str(folder), fix=_FIX
        )

    samples = []
    for case in tqdm(cases, desc="kits19: intensity statistics", disable=not progress, leave=False):
        image, seg, _ = _read_case(folder, case)
        image, seg = _crop_to_nonzero(image, seg)
        samples.append(image[seg > 0][::FOREGROUND_STEP])
    voxels = np.concatenate(samples) if samples else np.zeros(0, dtype=np.float32)
    if voxels.size == 0:
        raise DataError("no case has any kidney or tumour voxel", where=str(folder), fix=_FIX)
    intensity = {
        "mean": float(voxels.mean()),
        "std": float(voxels.std()),
        "p00_5": float(np.percentile(voxels, 0.5)),
        "p99_5": float(np.percentile(voxels, 99.5)),
    }

    tmp = folder / f".{PREPARED_DIR}-{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shapes = {}
    try:
        for case in tqdm(cases, desc="kits19: preprocessing", disable=not progress, leave=False):
            arrays = preprocess_case(*_read_case(folder, case), intensity)
            shapes[f"{case:05d}"] = list(arrays["image"].shape)
            np.savez_compressed(tmp / f"case_{case:05d}.npz", **arrays)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(
        folder / PREPARED_DIR, ignore_errors=True
    )  # left by a prepare that stopped before its manifest
    os.replace(tmp, folder / PREPARED_DIR)
    manifest = {
        "version": 1,
        "target_spacing": list(TARGET_SPACING),
        "intensity": intensity,
        "silos": [
            {"site": site, "train": split_silo(members)[0], "test": split_silo(members)[1]}
            for site, members in silos
        ],
        "shapes": shapes,
    }
    tmp_manifest = folder / (MANIFEST + ".tmp")
    tmp_manifest.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp_manifest, folder / MANIFEST)


SOURCE = DataSource(FILES, is_prepared=is_prepared, prepare=prepare)
"""The official files and the preparation step that turns them into the layout the loader reads."""
