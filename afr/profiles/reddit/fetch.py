"""Reddit: LEAF's preprocessed subsample -> the LEAF layout the profile reads.

LEAF preprocesses the pushshift.io December 2017 dump (a multi-GB download; bot removal, tokenising,
per-user time split 60/20/20, 10-token rows) and hosts the result on Google Drive. We do not rerun
that pipeline: :data:`FILES` is LEAF's subsample ``reddit_subsampled.zip`` (Drive id
``1ISzp69JmaIJqBpQCX-JJ8-kVyUns8M7o``, the file LEAF's README asks reference-model users to
download), fetched through Drive's direct-download endpoint. LEAF publishes no checksum: the md5 of
the first complete download is recorded in ``<folder>/.afr-md5.json`` and enforced afterwards.

Google Drive answers some scripted downloads with a web page (quota, confirmation) instead of the
file. :func:`prepare` recognises that (the file is not a zip), deletes it together with its recorded
md5 and says exactly what to download by hand and where to put it. This download path could not be
tried from the machine this was written on (no internet): it is tested against a local server only.

:func:`prepare` copies ``new_small_data/{train,val,test}_data.json`` out of the zip into
``train/``, ``val/`` and ``test/`` (atomically), with one change: LEAF's ``preprocess.py`` stores
each user's all-splits comment count as ``num_samples`` in every split, which we replace by the
split's own count (standard LEAF JSON). The vocabulary is built by the profile from the training
clients' rows. LEAF's full dataset (``reddit_{i}_{train,val,test}.json`` files, Drive id
``1lT1Z0N1weG-oA2PgC1Jak_WQ6h3bu7V_``) is accepted as is when its ``train/`` and ``test/`` folders are
put into ``<data_dir>/reddit/`` by hand.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from ...data import DataSource, RemoteFile, forget_download
from ...errors import DataError
from .._leaf_prepare import leaf_layout_ready, write_leaf_json

__all__ = ["SOURCE", "FILES", "DRIVE_ID", "is_prepared", "prepare"]

ARCHIVE = "reddit_subsampled.zip"
DRIVE_ID = "1ISzp69JmaIJqBpQCX-JJ8-kVyUns8M7o"
FILES = (
    RemoteFile(
        ARCHIVE,
        f"https://drive.usercontent.google.com/download?export=download&confirm=t&id={DRIVE_ID}",
        None,
    ),
)
SPLITS = ("train", "val", "test")


def is_prepared(folder: Path) -> bool:
    """LEAF ``train/`` and ``test/`` JSON present."""
    return leaf_layout_ready(Path(folder))


def _manual_fix(folder: Path) -> str:
    return (
        f"download https://drive.google.com/file/d/{DRIVE_ID}/view in a browser, save it as "
        f"{folder / ARCHIVE} and run `afr data fetch reddit` again (or put LEAF's reddit train/ and test/ "
        f"JSON folders into {folder})"
    )


def prepare(folder: Path, *, progress: bool = True) -> None:
    """``reddit_subsampled.zip`` in ``folder`` -> ``folder/{train,val,test}/<split>_data.json``.
    Idempotent (an existing LEAF layout is kept) and atomic."""
    folder = Path(folder)
    if leaf_layout_ready(folder):
        return
    archive = folder / ARCHIVE
    if not archive.is_file():
        raise DataError(f"{ARCHIVE} is missing", where=str(folder), fix=_manual_fix(folder))
    if not zipfile.is_zipfile(archive):
        with open(archive, "rb") as fh:
            head = fh.read(256).lstrip().lower()
        kind = (
            "a web page (Google Drive's quota or confirmation page)"
            if head.startswith((b"<!doctype", b"<html"))
            else "not a zip archive"
        )
        forget_download(folder, ARCHIVE)
        raise DataError(
            f"the downloaded {ARCHIVE} is {kind}; it was deleted", where=str(folder), fix=_manual_fix(folder)
        )
    from tqdm import tqdm

    build = Path(tempfile.mkdtemp(prefix=".reddit-build-", dir=folder))
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {}
            for name in zf.namelist():
                base = name.rsplit("/", 1)[-1]
                for split in SPLITS:
                    if base == f"{split}_data.json":
                        members[split] = name
            missing = [s for s in ("train", "test") if s not in members]
            if missing:
                raise DataError(
                    f"{ARCHIVE} holds no {' / '.join(f'{s}_data.json' for s in missing)}",
                    where=str(archive),
                    fix=_manual_fix(folder),
                )
            for split, name in tqdm(
                list(members.items()), desc="reddit: extracting", disable=not progress, leave=False
            ):
                with zf.open(name) as src:
                    try:
                        doc = json.load(src)
                    except (UnicodeDecodeError, ValueError) as exc:
                        raise DataError(
                            f"{name} in {ARCHIVE} is not JSON: {exc}",
                            where=str(archive),
                            fix=_manual_fix(folder),
                        ) from exc
                if (
                    not isinstance(doc, dict)
                    or not isinstance(doc.get("users"), list)
                    or not isinstance(doc.get("user_data"), dict)
                ):
                    raise DataError(
                        f"{name} in {ARCHIVE} is not LEAF JSON", where=str(archive), fix=_manual_fix(folder)
                    )
                # LEAF's preprocess.py copies each user's all-splits comment count into every split's
                # num_samples; write the split's own count so the file reads as standard LEAF JSON.
                write_leaf_json(build / split / f"{split}_data.json", doc["users"], doc["user_data"])
                del doc
        for split in ("val", "test", "train"):  # train last: leaf_layout_ready needs train and test
            if (build / split).is_dir():
                if (folder / split).exists():
                    shutil.rmtree(folder / split)
                os.replace(build / split, folder / split)
    except (OSError, zipfile.BadZipFile, KeyError, TypeError) as exc:
        raise DataError(
            f"cannot extract {ARCHIVE}: {exc!r}", where=str(archive), fix=_manual_fix(folder)
        ) from exc
    finally:
        shutil.rmtree(build, ignore_errors=True)


SOURCE = DataSource(FILES, is_prepared=is_prepared, prepare=prepare)
"""The official files and the preparation step that turns them into the layout the loader reads."""
