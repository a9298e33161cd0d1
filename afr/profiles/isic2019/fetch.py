"""Fed-ISIC2019 (FLamby): the official ISIC 2019 training files -> 6 centers of preprocessed JPEGs.

Downloads (``FILES``):

* ``ISIC_2019_Training_Input.zip`` (25,331 dermoscopy JPEGs, ~9 GB), ``ISIC_2019_Training_Metadata.csv``
  and ``ISIC_2019_Training_GroundTruth.csv`` from the ISIC challenge bucket. ISIC publishes no
  checksums: ``md5=None``, so the md5 of the first complete download is recorded in
  ``<folder>/.afr-md5.json`` and every later fetch / verify is held to it.
* ``HAM10000_metadata``: the HAM10000 metadata (Tschandl et al., Harvard Dataverse doi:10.7910/DVN/DBW86T),
  whose ``dataset`` column tells the four HAM sources apart. We take the copy FLamby ships, pinned to
  FLamby commit edacf54d (md5 computed from that blob), because Dataverse serves no stable per-file URL
  with a published checksum.
* ``train_test_split``: FLamby's static split (image, one-hot classes, target, center, fold, fold2),
  stratified by center, same pinned commit and md5.

:func:`prepare` (run by ``afr data fetch isic2019`` after the downloads) follows FLamby's
``download_isic.py`` + ``resize_images.py``: keep the images whose metadata has a ``lesion_id``
(23,247 of 25,331 in the full data), center = ``lesion_id`` prefix (BCN / HAM / MSK) refined for HAM by
the HAM10000 ``dataset`` column -> 0 BCN, 1 HAM_vidir_molemax, 2 HAM_vidir_modern, 3 HAM_rosendahl,
4 MSK, 5 HAM_vienna_dias; resize each image so that its shorter side is 224 px (Pillow bilinear, aspect
kept, the longer side ``long * 224 // short``), apply Shades-of-Gray colour constancy (p = 6, no gamma)
and save it as a JPEG (Pillow's defaults, quality 75) in ``ISIC_2019_Training_Input_preprocessed/``.
Differences from FLamby: FLamby casts the colour-corrected floats with ``astype(uint8)``, which wraps
values above 255 around; we clip them to 0..255 first (then truncate as FLamby does). The downloaded
files are never modified (FLamby deletes the dropped images and rewrites the CSVs in place); the zip is
kept so ``afr data verify isic2019`` still works — delete it by hand to save ~9 GB once prepared.

Prepared layout (what the loader reads)::

    <folder>/train_test_split
    <folder>/ISIC_2019_Training_Input_preprocessed/<image>.jpg
    <folder>/ISIC_2019_Training_Metadata_FL.csv     image, center, center_name, target
    <folder>/.afr-prepared.json                     written last: the layout is complete

The preprocessing writes into ``ISIC_2019_Training_Input_preprocessed.partial/`` (each JPEG through a
temporary file and ``os.replace``) and renames the folder when every image is done, so an interrupted
run leaves no half-written layout and the next run resumes where it stopped.

Optional ImageNet weights for the EfficientNet-B0 model (``WEIGHTS``, the ``efficientnet_pytorch``
release file whose name carries the first 8 hex digits of its SHA-256, checked after download) are
fetched with ``python -m afr.profiles.isic2019 weights [--data-dir DIR] [--mirror URL]`` into the
same folder; the profile uses them when ``pretrained: true``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...data import DataSource, RemoteFile, download_file, profile_dir
from ...errors import ChecksumError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from PIL import Image

__all__ = [
    "SOURCE",
    "FILES",
    "WEIGHTS",
    "CLASSES",
    "CENTERS",
    "IMAGE_DIR",
    "SPLIT_FILE",
    "METADATA_FL",
    "SHORT_SIDE",
    "is_prepared",
    "prepare",
    "read_kept_images",
    "shades_of_gray",
    "resize_shorter_side",
    "preprocess_image",
    "weights_path",
    "fetch_weights",
]

_ISIC = "https://isic-challenge-data.s3.amazonaws.com/2019"
_FLAMBY = (
    "https://raw.githubusercontent.com/owkin/FLamby/edacf54d5211520583b0133d55ac39b6fda8324b"
    "/flamby/datasets/fed_isic2019"
)

ZIP_FILE = "ISIC_2019_Training_Input.zip"
METADATA_FILE = "ISIC_2019_Training_Metadata.csv"
GROUND_TRUTH_FILE = "ISIC_2019_Training_GroundTruth.csv"
HAM_FILE = "HAM10000_metadata"
SPLIT_FILE = "train_test_split"

FILES: tuple[RemoteFile, ...] = (
    RemoteFile(ZIP_FILE, f"{_ISIC}/{ZIP_FILE}", None),
    RemoteFile(METADATA_FILE, f"{_ISIC}/{METADATA_FILE}", None),
    RemoteFile(GROUND_TRUTH_FILE, f"{_ISIC}/{GROUND_TRUTH_FILE}", None),
    RemoteFile(HAM_FILE, f"{_FLAMBY}/{HAM_FILE}", "8f85fb1aa29d80a2797247e434deb79d"),
    RemoteFile(
        SPLIT_FILE, f"{_FLAMBY}/dataset_creation_scripts/{SPLIT_FILE}", "f65e84dcd1e6b69edf55960899b22d81"
    ),
)

WEIGHTS = RemoteFile(
    "efficientnet-b0-355c32eb.pth",
    "https://github.com/lukemelas/EfficientNet-PyTorch/releases/download/1.0/efficientnet-b0-355c32eb.pth",
    None,
)
_WEIGHTS_SHA256_PREFIX = "355c32eb"

CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")
CENTERS = ("BCN", "HAM_vidir_molemax", "HAM_vidir_modern", "HAM_rosendahl", "MSK", "HAM_vienna_dias")
_HAM_SOURCES = {"vidir_molemax": 1, "vidir_modern": 2, "rosendahl": 3, "vienna_dias": 5}
_PREFIX_CENTER = {"BCN": 0, "MSK": 4}

IMAGE_DIR = "ISIC_2019_Training_Input_preprocessed"
METADATA_FL = "ISIC_2019_Training_Metadata_FL.csv"
_MARKER = ".afr-prepared.json"
_PARTIAL = IMAGE_DIR + ".partial"
SHORT_SIDE = 224
_FULL_METADATA_ROWS = 25_331  # the official training metadata
_FULL_KEPT = 23_247  # images with a lesion_id in it (FLamby's count)
_FETCH = "afr data fetch isic2019"


def is_prepared(folder: Path) -> bool:
    """True when the loader's layout is complete (the marker is written last by :func:`prepare`)."""
    folder = Path(folder)
    return (
        (folder / _MARKER).is_file()
        and (folder / IMAGE_DIR).is_dir()
        and (folder / SPLIT_FILE).is_file()
        and (folder / METADATA_FL).is_file()
    )


# --- tables -----------------------------------------------------------------------------------------


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise DataError(f"missing raw file {path.name}", where=str(path.parent), fix=f"run `{_FETCH}`")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {path.name}: {exc}", where=str(path), fix=f"re-run `{_FETCH}`") from exc
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise DataError(
            f"{path.name} lacks the column(s) {', '.join(absent)}",
            where=str(path),
            fix=f"delete it and re-run `{_FETCH}` (it is not the official file)",
        )
    return frame


def read_kept_images(folder: Path) -> pd.DataFrame:
    """The images FLamby keeps, with their center and label: columns image, center, center_name, target.

    Raises ``DataError`` when the raw tables are inconsistent with each other or with the split file.
    """
    import numpy as np

    folder = Path(folder)
    metadata = _read_csv(folder / METADATA_FILE, ("image", "lesion_id"))
    truth = _read_csv(folder / GROUND_TRUTH_FILE, ("image", *CLASSES, "UNK"))
    ham = _read_csv(folder / HAM_FILE, ("image_id", "dataset"))
    split = _read_csv(folder / SPLIT_FILE, ("image", "target", "center", "fold", "fold2"))

    if set(metadata["image"]) != set(truth["image"]) or len(metadata) != len(truth):
        raise DataError(
            f"{METADATA_FILE} and {GROUND_TRUTH_FILE} list different images",
            where=str(folder),
            fix=f"delete both and re-run `{_FETCH}`",
        )
    kept = metadata.loc[metadata["lesion_id"].notna(), ["image", "lesion_id"]].reset_index(drop=True)
    if len(metadata) == _FULL_METADATA_ROWS and len(kept) != _FULL_KEPT:
        raise DataError(
            f"{len(kept)} images have a lesion_id, FLamby's ISIC 2019 has {_FULL_KEPT}",
            where=str(folder / METADATA_FILE),
            fix=f"delete the file and re-run `{_FETCH}`",
        )

    prefix = kept["lesion_id"].astype(str).str[:3]
    ham_source = kept["image"].map(dict(zip(ham["image_id"], ham["dataset"], strict=True)))
    center = prefix.map(_PREFIX_CENTER)
    is_ham = prefix == "HAM"
    center[is_ham] = ham_source[is_ham].map(_HAM_SOURCES)
    unknown = kept.loc[center.isna(), "image"].tolist()
    if unknown:
        raise DataError(
            f"no center for {len(unknown)} image(s) (e.g. {unknown[0]}): lesion_id prefix not BCN/HAM/MSK, "
            f"or a HAM image missing from {HAM_FILE}",
            where=str(folder),
            fix=f"delete {METADATA_FILE} and {HAM_FILE} and re-run `{_FETCH}`",
        )
    kept["center"] = center.astype(int)
    kept["center_name"] = [CENTERS[c] for c in kept["center"]]

    onehot = truth.set_index("image").loc[kept["image"], [*CLASSES, "UNK"]].to_numpy(dtype=float)
    if not np.allclose(onehot.sum(axis=1), 1.0) or onehot[:, -1].any():
        raise DataError(
            f"{GROUND_TRUTH_FILE} must give exactly one of {', '.join(CLASSES)} per kept image",
            where=str(folder / GROUND_TRUTH_FILE),
            fix=f"delete it and re-run `{_FETCH}`",
        )
    kept["target"] = onehot[:, : len(CLASSES)].argmax(axis=1)

    # FLamby's split was made from these tables: any disagreement means a wrong or altered file.
    merged = split[["image", "center", "target"]].merge(
        kept[["image", "center", "target"]], on="image", how="left", suffixes=("_split", "")
    )
    bad = merged[(merged["center"] != merged["center_split"]) | (merged["target"] != merged["target_split"])]
    if len(bad):
        raise DataError(
            f"{len(bad)} image(s) of {SPLIT_FILE} are missing from the kept images or have another "
            f"center/label there (e.g. {bad['image'].iloc[0]})",
            where=str(folder),
            fix=f"delete the CSV files and {SPLIT_FILE} and re-run `{_FETCH}`",
        )
    return kept[["image", "center", "center_name", "target"]]


# --- images -----------------------------------------------------------------------------------------


def shades_of_gray(image: np.ndarray, power: int = 6) -> np.ndarray:
    """Shades-of-Gray colour constancy (Finlayson & Trezzi): scale each channel so that the image's
    Minkowski p-norm illuminant becomes grey. ``image`` is uint8 (H, W, 3); returns uint8 (clipped)."""
    import numpy as np

    pixels = image.astype(np.float64)
    illuminant = np.power(np.mean(np.power(pixels, power), axis=(0, 1)), 1.0 / power)
    norm = float(np.sqrt(np.sum(illuminant**2)))
    if norm == 0.0:
        return image.copy()  # an all-black image has no illuminant to correct
    unit = illuminant / norm
    gain = np.divide(1.0, unit * np.sqrt(3.0), out=np.zeros_like(unit), where=unit > 0)
    return np.clip(pixels * gain, 0, 255).astype(np.uint8)


def resize_shorter_side(image: Image.Image, size: int = SHORT_SIDE) -> Image.Image:
    """Bilinear resize so the shorter side is ``size`` px, aspect kept (longer side rounded down)."""
    from PIL import Image

    width, height = image.size
    short = min(width, height)
    new_size = (width * size // short, height * size // short)
    return image.resize(new_size, resample=Image.Resampling.BILINEAR)


def preprocess_image(data: bytes) -> bytes:
    """One raw ISIC JPEG -> the preprocessed JPEG's bytes (RGB, shorter side 224, colour constancy)."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as raw:
        rgb = raw.convert("RGB")
    corrected = shades_of_gray(np.asarray(resize_shorter_side(rgb)))
    out = io.BytesIO()
    Image.fromarray(corrected).save(out, format="JPEG")
    return out.getvalue()


def _zip_members(archive: Any) -> dict[str, str]:
    """``{image name: member path}`` of every JPEG in the zip (any folder inside it)."""
    members = {}
    for name in archive.namelist():
        base = name.rsplit("/", 1)[-1]
        if base.lower().endswith(".jpg") and not name.endswith("/"):
            members[base[:-4]] = name
    return members


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _bounded(pool: ThreadPoolExecutor, jobs: Iterator[tuple[Any, ...]], limit: int) -> Iterator[Future]:
    """Submit ``(fn, *args)`` jobs with at most ``limit`` in flight; yield the futures in order."""
    pending: deque[Future] = deque()
    for fn, *args in jobs:
        pending.append(pool.submit(fn, *args))
        if len(pending) >= limit:
            yield pending.popleft()
    yield from pending


def prepare(folder: Path, *, progress: bool = True, workers: int | None = None) -> None:
    """Raw files in ``folder`` -> the loader's layout (see the module docstring). Idempotent: a prepared
    folder is left as is; an interrupted run resumes. ``workers`` threads decode and encode (default:
    one per CPU core)."""
    folder = Path(folder)
    if is_prepared(folder):
        return
    kept = read_kept_images(folder)
    zip_path = folder / ZIP_FILE
    if not zip_path.is_file():
        raise DataError(f"missing raw file {ZIP_FILE}", where=str(folder), fix=f"run `{_FETCH}`")
    partial = folder / _PARTIAL
    partial.mkdir(exist_ok=True)
    for stale in partial.glob(".*.tmp"):
        stale.unlink()
    todo = [name for name in kept["image"] if not (partial / f"{name}.jpg").is_file()]
    members = _members_of(zip_path, todo)
    _preprocess_images(zip_path, members, todo, partial, total=len(kept), progress=progress, workers=workers)
    _finish(folder, kept, partial)


def _members_of(zip_path: Path, todo: list[str]) -> dict[str, str]:
    """Image name -> zip member, checked to hold every image still to do."""
    import zipfile

    try:
        with zipfile.ZipFile(zip_path) as archive:
            members = _zip_members(archive)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{ZIP_FILE} is not a readable zip: {exc}",
            where=str(zip_path),
            fix=f"delete it and re-run `{_FETCH}`",
        ) from exc
    missing = [name for name in todo if name not in members]
    if missing:
        raise DataError(
            f"{len(missing)} kept image(s) are not in {ZIP_FILE} (e.g. {missing[0]}.jpg)",
            where=str(zip_path),
            fix=f"delete the zip and re-run `{_FETCH}`",
        )
    return members


def _preprocess_images(
    zip_path: Path,
    members: dict[str, str],
    todo: list[str],
    partial: Path,
    *,
    total: int,
    progress: bool,
    workers: int | None,
) -> None:
    """Resize + colour constancy of every image still to do, in threads, each written atomically."""
    import zipfile

    from tqdm import tqdm

    local = threading.local()
    handles: list[zipfile.ZipFile] = []

    def work(name: str, member: str) -> None:
        if not hasattr(local, "archive"):  # one handle per thread: members are read concurrently
            local.archive = zipfile.ZipFile(zip_path)
            handles.append(local.archive)
        try:
            data = preprocess_image(local.archive.read(member))
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(
                f"cannot preprocess {member} from {ZIP_FILE}: {exc}",
                where=str(zip_path),
                fix=f"delete the zip and re-run `{_FETCH}`",
            ) from exc
        _write_atomic(partial / f"{name}.jpg", data)

    threads = workers or os.cpu_count() or 1
    bar = tqdm(
        total=total,
        initial=total - len(todo),
        unit="img",
        desc="isic2019: resize + colour constancy",
        disable=not (progress and sys.stderr.isatty()),
    )
    try:
        with bar, ThreadPoolExecutor(max_workers=threads) as pool:
            jobs = ((work, name, members[name]) for name in todo)
            for future in _bounded(pool, jobs, limit=4 * threads):
                future.result()
                bar.update(1)
    finally:
        for handle in handles:
            handle.close()


def _finish(folder: Path, kept: Any, partial: Path) -> None:
    """The metadata CSV, the image folder moved into place, then the marker (last: it means done)."""
    import pandas as pd

    table = kept.copy()
    buffer = io.StringIO()
    table.to_csv(buffer, index=False)
    _write_atomic(folder / METADATA_FL, buffer.getvalue().encode())
    final = folder / IMAGE_DIR
    if final.exists():  # a complete-looking folder without the marker: rebuilt from this run
        shutil.rmtree(final)
    os.replace(partial, final)
    counts = pd.Series(table["center_name"]).value_counts().reindex(CENTERS, fill_value=0)
    summary = {"images": len(table), "per_center": {k: int(v) for k, v in counts.items()}}
    _write_atomic(folder / _MARKER, json.dumps(summary, indent=1).encode())


# --- optional pretrained weights ---------------------------------------------------------------------


def weights_path(folder: Path) -> Path:
    """Where the optional EfficientNet-B0 ImageNet checkpoint lives in the profile folder."""
    return Path(folder) / WEIGHTS.filename


def fetch_weights(
    data_dir: Path | str | None = None,
    *,
    mirror: str | None = None,
    progress: bool = True,
    timeout: float = 60,
) -> Path:
    """Download the EfficientNet-B0 ImageNet checkpoint (resumable, md5 recorded at the first download,
    SHA-256 prefix from the release file name checked) into ``<data_dir>/isic2019``; return its path."""
    folder = profile_dir("isic2019", data_dir)
    dest = weights_path(folder)
    hint = "python -m afr.profiles.isic2019 weights" + (f" --data-dir {data_dir}" if data_dir else "")
    if not dest.is_file():
        download_file(
            "isic2019", WEIGHTS, data_dir, mirror=mirror, progress=progress, timeout=timeout, hint=hint
        )
    digest = hashlib.sha256(dest.read_bytes()).hexdigest()
    if not digest.startswith(_WEIGHTS_SHA256_PREFIX):
        dest.unlink()
        raise ChecksumError(
            f"{WEIGHTS.filename} has SHA-256 {digest[:8]}..., its release name says {_WEIGHTS_SHA256_PREFIX}",
            where=str(folder),
            fix=f"the bad copy was deleted: run `{hint}` again",
        )
    return dest


SOURCE = DataSource(FILES, is_prepared=is_prepared, prepare=prepare)
"""The official files and the preparation step that turns them into the layout the loader reads."""
