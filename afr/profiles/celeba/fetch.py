"""CelebA: the official identity and attribute lists -> LEAF JSON (our version of LEAF's preprocessing).

Official raw files (CelebA, Liu et al., 2015; http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html),
hosted on the authors' Google Drive: ``img_align_celeba.zip`` (1.4 GB of 178 x 218 JPEGs),
``list_attr_celeba.txt`` and ``identity_CelebA.txt``. The Drive ids and md5s are those torchvision's
``CelebA`` dataset publishes for the same files. Google Drive often refuses scripted downloads
(quota, confirmation pages): then the download fails its md5 check and nothing is kept. In that
case download the three files by hand from the CelebA page into ``<data_dir>/celeba/`` and run
``afr data fetch celeba`` again; files that match their md5 are not downloaded again.

:func:`prepare` follows LEAF's ``data/celeba/preprocess/metadata_to_json.py``: user = celebrity id,
celebrities with fewer than 5 images dropped, ``x`` = image file name, ``y = (Smiling + 1) / 2``
(paired by file name); users in order of first appearance in the identity list, images in list
order. Then LEAF's sampling, ``-k`` filter and per-user split (:data:`DEFAULT_FLAGS`: LEAF's small
CelebA ``-s niid --sf 0.05 -k 5 -t sample --tf 0.9`` with explicit seeds; pass other
:class:`~afr.profiles._leaf_prepare.LeafFlags` from Python for other sizes). The images are not
extracted: the profile reads them from the zip (or from an ``img_align_celeba/`` folder if present).

Already preprocessed LEAF JSON (``train/`` and ``test/``) plus the images is accepted as is.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ...data import DataSource, RemoteFile
from ...errors import DataError
from .._leaf_prepare import LeafFlags, leaf_layout_ready, run_leaf_pipeline

__all__ = [
    "SOURCE",
    "FILES",
    "DEFAULT_FLAGS",
    "TARGET",
    "MIN_IMAGES",
    "is_prepared",
    "prepare",
    "read_metadata",
]

IMAGES_DIR = "img_align_celeba"
IMAGES_ZIP = "img_align_celeba.zip"
ATTRIBUTES = "list_attr_celeba.txt"
IDENTITIES = "identity_CelebA.txt"
TARGET = "Smiling"
MIN_IMAGES = 5
_DRIVE = "https://drive.usercontent.google.com/download?export=download&confirm=t&id="
FILES = (
    RemoteFile(IMAGES_ZIP, _DRIVE + "0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb"),
    RemoteFile(ATTRIBUTES, _DRIVE + "0B7EVK8r0v71pblRyaVFSWGxPY0U", "75e246fa4810816ffd6ee81facbd244c"),
    RemoteFile(IDENTITIES, _DRIVE + "1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS", "32bd1bd63d3c78cd57e08160ec5ed1e2"),
)
DEFAULT_FLAGS = LeafFlags(
    sampling="niid",
    fraction=0.05,
    min_samples=5,
    split="sample",
    train_fraction=0.9,
    sampling_seed=1,
    split_seed=2,
)


def _images_available(folder: Path) -> bool:
    return (folder / IMAGES_DIR).is_dir() or (folder / IMAGES_ZIP).is_file()


def is_prepared(folder: Path) -> bool:
    """LEAF ``train/`` and ``test/`` JSON present and the images there (folder or zip)."""
    folder = Path(folder)
    return leaf_layout_ready(folder) and _images_available(folder)


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path.name} is missing", where=str(path.parent), fix="run `afr data fetch celeba`")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot read {path.name}: {exc}",
            where=str(path),
            fix="delete it and run `afr data fetch celeba`",
        ) from exc


def read_metadata(folder: Path, target: str = TARGET, min_images: int = MIN_IMAGES) -> dict:
    """The identity and attribute lists -> one LEAF all-data dict (celebrities with >= ``min_images``)."""
    fix = "delete the file and run `afr data fetch celeba` again"
    celebs: dict[str, list[str]] = {}
    for number, line in enumerate(_lines(folder / IDENTITIES), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(
                f"{IDENTITIES} line {number} is not '<image> <celebrity>'", where=str(folder), fix=fix
            )
        celebs.setdefault(parts[1], []).append(parts[0])
    attributes = _lines(folder / ATTRIBUTES)
    if len(attributes) < 2:
        raise DataError(f"{ATTRIBUTES} has no header", where=str(folder), fix=fix)
    columns = attributes[1].split()
    if target not in columns:
        raise DataError(f"{ATTRIBUTES} has no {target} column", where=str(folder), fix=fix)
    col = columns.index(target)
    label: dict[str, float] = {}
    for number, line in enumerate(attributes[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(columns) + 1 or parts[col + 1] not in ("-1", "1"):
            raise DataError(f"{ATTRIBUTES} line {number} is malformed", where=str(folder), fix=fix)
        label[parts[0]] = (int(parts[col + 1]) + 1) / 2  # LEAF stores 0.0 / 1.0
    kept = {c: images for c, images in celebs.items() if len(images) >= min_images}
    unlabelled = sorted({img for images in kept.values() for img in images if img not in label})
    if unlabelled:
        raise DataError(
            f"{len(unlabelled)} image(s) of {IDENTITIES} have no row in {ATTRIBUTES} (e.g. {unlabelled[0]})",
            where=str(folder),
            fix="use the official pair of lists (re-download both)",
        )
    users = list(kept)
    return {
        "users": users,
        "num_samples": [len(kept[u]) for u in users],
        "user_data": {u: {"x": list(kept[u]), "y": [label[img] for img in kept[u]]} for u in users},
    }


def _image_names(folder: Path) -> set[str]:
    if (folder / IMAGES_DIR).is_dir():
        return {p.name for p in (folder / IMAGES_DIR).iterdir()}
    try:
        with zipfile.ZipFile(folder / IMAGES_ZIP) as zf:
            return {n.rsplit("/", 1)[-1] for n in zf.namelist() if not n.endswith("/")}
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"cannot open {IMAGES_ZIP}: {exc}",
            where=str(folder / IMAGES_ZIP),
            fix="delete it and run `afr data fetch celeba` again",
        ) from exc


def prepare(folder: Path, *, progress: bool = True, flags: LeafFlags | None = None) -> None:
    """Raw lists in ``folder`` -> ``folder/{train,test,meta}`` (LEAF JSON of image names and labels).
    Idempotent (an existing LEAF layout is kept) and atomic; checks every kept image exists."""
    folder = Path(folder)
    flags = DEFAULT_FLAGS if flags is None else flags
    if not _images_available(folder):
        raise DataError(
            f"the CelebA images are missing: neither {IMAGES_DIR}/ nor {IMAGES_ZIP}",
            where=str(folder),
            fix=f"run `afr data fetch celeba` or put the official {IMAGES_ZIP} there by hand",
        )
    if leaf_layout_ready(folder):
        return
    from tqdm import tqdm

    all_data = read_metadata(folder)
    present = _image_names(folder)

    def check(names: list) -> list:
        missing = [n for n in names if n not in present]
        if missing:
            raise DataError(
                f"image {missing[0]} (and {len(missing) - 1} more) of {IDENTITIES} is not among the images",
                where=str(folder),
                fix=f"use the official {IMAGES_ZIP} with its lists",
            )
        return names

    run_leaf_pipeline(
        [("all_data", all_data)],
        folder,
        flags,
        materialize=check,
        progress=lambda items: tqdm(
            items, desc="celeba: LEAF sampling and split", disable=not progress, leave=False
        ),
    )


SOURCE = DataSource(FILES, is_prepared=is_prepared, prepare=prepare)
"""The official files and the preparation step that turns them into the layout the loader reads."""
