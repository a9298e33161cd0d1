"""FEMNIST from NIST Special Database 19: our implementation of LEAF's ``data/femnist`` pipeline.

Raw files (``FILES``): NIST's ``by_class.zip`` (images sorted by character class) and ``by_write.zip``
(the same images sorted by writer). NIST publishes no checksums; the md5s below are the ones several
independent FL code bases pin for these two URLs (not verified here: no network) -- a mismatch is
reported by ``afr data fetch`` as a checksum error.

:func:`prepare` (``afr data fetch femnist`` runs it after the download), reading the zips in place:

1. labels: every PNG under ``by_class/<hex class>/hsf_*/`` (LEAF skips the ``train_*`` copies and the
   ``*.mit`` lists) is hashed (md5); its class is the character with that ASCII code, relabelled
   0-9 digits, 10-35 upper case, 36-61 lower case;
2. writers: every PNG under ``by_write/hsf_*/<writer>/<form>/`` whose md5 matches a by_class image gets
   that label (unmatched images are dropped, as LEAF's ``match_hashes`` does); user = writer folder
   (e.g. ``f0000_14``); a writer's images in path order;
3. LEAF's chunks: writers sorted, 100 per all-data chunk ``all_data_<i>``;
4. LEAF's sampling, ``-k`` filter and split (``afr/profiles/_leaf_prepare.py``) with :data:`FLAGS`
   (LEAF's ``paper_experiments/femnist.sh``: ``-s niid --sf 0.05 -k 100 -t sample``, its seeds);
5. only the kept images are decoded: grey scale, ``thumbnail((28, 28))`` with Lanczos antialiasing
   (LEAF's call), ``/ 255`` floats, 784 per image, written as LEAF JSON (``.json.gz``).

Already-preprocessed LEAF JSON in ``<folder>/train`` and ``<folder>/test`` is accepted as is
(:func:`is_prepared`), so ``afr data fetch femnist`` skips the 2 GB download for it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

from ...data import DataSource, RemoteFile
from ...errors import DataError
from .._leaf_prepare import LeafFlags, leaf_layout_ready, run_leaf_pipeline

__all__ = [
    "SOURCE",
    "FILES",
    "FLAGS",
    "WRITERS_PER_CHUNK",
    "is_prepared",
    "prepare",
    "class_label",
    "read_class_hashes",
    "read_writer_images",
    "writer_chunks",
    "image_pixels",
]

_NIST = "https://s3.amazonaws.com/nist-srd/SD19"
FILES: tuple[RemoteFile, ...] = (
    RemoteFile("by_class.zip", f"{_NIST}/by_class.zip", "79572b1694a8506f2b722c7be54130c4"),
    RemoteFile("by_write.zip", f"{_NIST}/by_write.zip", "a29f21babf83db0bb28a2f77b2b456cb"),
)
FLAGS = LeafFlags(
    sampling="niid",
    fraction=0.05,
    min_samples=100,
    split="sample",
    train_fraction=0.9,
    sampling_seed=1549786595,
    split_seed=1549786796,
)
WRITERS_PER_CHUNK = 100
IMAGE_SIZE = 28


def is_prepared(folder: Path) -> bool:
    """``folder/train`` and ``folder/test`` hold LEAF JSON (ours or LEAF's own)."""
    return leaf_layout_ready(folder)


def class_label(hex_code: str) -> int:
    """NIST class folder (ASCII code in hex) -> LEAF label: '0'-'9' 0-9, 'A'-'Z' 10-35, 'a'-'z' 36-61."""
    char = chr(int(hex_code, 16))
    if "0" <= char <= "9":
        return ord(char) - ord("0")
    if "A" <= char <= "Z":
        return 10 + ord(char) - ord("A")
    if "a" <= char <= "z":
        return 36 + ord(char) - ord("a")
    raise ValueError(f"NIST class {hex_code!r} is not a digit or a letter")


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"cannot open {path.name}: {exc}",
            where=str(path),
            fix="delete it and run `afr data fetch femnist` again",
        ) from exc


def _bar(items: Any, total: int, desc: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit="file", disable=not progress, leave=False)


def read_class_hashes(by_class: Path, *, progress: bool = False) -> dict[str, int]:
    """md5 of every ``by_class/<class>/hsf_*/*.png`` -> its LEAF label."""
    labels: dict[str, int] = {}
    with _open_zip(by_class) as zf:
        names = [n for n in zf.namelist() if n.lower().endswith(".png")]
        for name in _bar(names, len(names), "by_class", progress):
            parts = name.split("/")
            if len(parts) < 3 or not parts[-2].startswith("hsf") or "mit" in parts[-2]:
                continue
            try:
                label = class_label(parts[-3])
            except ValueError:
                continue
            labels[hashlib.md5(zf.read(name), usedforsecurity=False).hexdigest()] = label
    if not labels:
        raise DataError(
            "by_class.zip holds no by_class/<class>/hsf_*/*.png images",
            where=str(by_class),
            fix="delete it and run `afr data fetch femnist` again",
        )
    return labels


def read_writer_images(
    by_write: Path, labels: dict[str, int], *, progress: bool = False
) -> dict[str, list[tuple[str, int]]]:
    """Writer -> [(zip member, label)] for every ``by_write/hsf_*/<writer>/<form>/*.png`` whose md5
    matches a by_class image, in member-path order."""
    writers: dict[str, list[tuple[str, int]]] = {}
    with _open_zip(by_write) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith(".png"))
        for name in _bar(names, len(names), "by_write", progress):
            parts = name.split("/")
            if len(parts) < 4 or not parts[-4].startswith("hsf"):
                continue
            label = labels.get(hashlib.md5(zf.read(name), usedforsecurity=False).hexdigest())
            if label is not None:
                writers.setdefault(parts[-3], []).append((name, label))
    if not writers:
        raise DataError(
            "no by_write.zip image matches a by_class.zip image",
            where=str(by_write),
            fix="delete both zips and run `afr data fetch femnist` again",
        )
    return writers


def writer_chunks(writers: dict[str, list[tuple[str, int]]]) -> list[tuple[str, dict[str, Any]]]:
    """LEAF's all-data chunks (100 writers each, writers sorted); ``x`` holds zip member names."""
    ordered = sorted(writers)
    chunks = []
    for i in range(0, len(ordered), WRITERS_PER_CHUNK):
        users = ordered[i : i + WRITERS_PER_CHUNK]
        user_data = {w: {"x": [m for m, _ in writers[w]], "y": [c for _, c in writers[w]]} for w in users}
        chunk = {"users": users, "num_samples": [len(writers[w]) for w in users], "user_data": user_data}
        chunks.append((f"all_data_{i // WRITERS_PER_CHUNK}", chunk))
    return chunks


def image_pixels(png: bytes) -> list[float]:
    """LEAF's image conversion: grey scale, thumbnail to 28x28 (Lanczos), ``/ 255``, row-major floats."""
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as img:
        gray = img.convert("L")
    gray.thumbnail((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    if gray.size != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataError(f"a NIST image is not square (thumbnail {gray.size})", fix="re-fetch the zips")
    return (np.asarray(gray, dtype=np.float64).reshape(-1) / 255.0).tolist()


def prepare(folder: Path, *, progress: bool = True, flags: LeafFlags | None = None) -> dict[str, Any]:
    """NIST zips in ``folder`` -> LEAF JSON in ``folder/{train,test}`` (idempotent, atomic).

    ``flags`` defaults to :data:`FLAGS` (looked up at call time); returns the pipeline's summary, or
    ``{}`` when the layout was already there.
    """
    folder = Path(folder)
    flags = FLAGS if flags is None else flags
    if is_prepared(folder):
        return {}
    labels = read_class_hashes(folder / "by_class.zip", progress=progress)
    writers = read_writer_images(folder / "by_write.zip", labels, progress=progress)
    chunks = writer_chunks(writers)
    with _open_zip(folder / "by_write.zip") as zf:
        return run_leaf_pipeline(
            chunks,
            folder,
            flags,
            materialize=lambda members: [image_pixels(zf.read(m)) for m in members],
            progress=lambda items: _bar(items, len(chunks), "femnist chunks", progress),
        )


SOURCE = DataSource(FILES, is_prepared=is_prepared, prepare=prepare)
"""The official files and the preparation step that turns them into the layout the loader reads."""
