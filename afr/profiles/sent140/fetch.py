"""Sent140: Stanford's Sentiment140 archive -> LEAF JSON (our implementation of LEAF's preprocessing).

Official raw file: ``trainingandtestdata.zip`` from Stanford (Go, Bhayani and Huang, 2009), holding
``training.1600000.processed.noemoticon.csv`` and ``testdata.manual.2009.06.14.csv``: headerless,
fully quoted, ISO-8859-1 CSVs with 6 columns (polarity, id, date, query, user, text). Stanford
publishes no checksum; the md5 pinned here is the one used by public loaders (e.g. datamaestro's
Sentiment140 entry) for the same URL.

:func:`prepare` follows LEAF's ``data/sent140/preprocess``: both CSVs merged (training rows, then
test rows), rows grouped by user (the handle, users in sorted order), ``x = [id, date, query, user,
text, "training"|"test"]``, ``y = 1`` if polarity is ``"4"`` else 0 (the test CSV's neutral ``"2"``
becomes 0, as in LEAF); then LEAF's sampling, ``-k`` filter and per-user split
(:data:`DEFAULT_FLAGS`: LEAF's small Sent140 ``-s niid --sf 0.05 -k 3 -t sample --tf 0.9`` with
explicit seeds; pass other :class:`~afr.profiles._leaf_prepare.LeafFlags` from Python for other sizes).

GloVe (optional, not in :data:`FILES`): put ``glove.6B.zip`` (https://nlp.stanford.edu/data/glove.6B.zip,
822 MB, md5 :data:`GLOVE_MD5` as used by public loaders) in the same folder. When :func:`prepare`
runs (``afr data fetch sent140`` on a folder not yet prepared, or ``prepare(folder)`` from Python) it
checks the md5 and writes the 400,000-word vocabulary, the only part LEAF's models use, to
``glove_vocab.txt``; otherwise the profile reads the words from the zip itself (unchecked, ~2 s).
Without GloVe the profile builds its vocabulary from the training tweets.

Already preprocessed LEAF JSON (``train/`` and ``test/`` folders) is accepted as is.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import zipfile
from pathlib import Path

from ...data import DataSource, RemoteFile, file_md5
from ...errors import DataError
from .._leaf_prepare import LeafFlags, leaf_layout_ready, run_leaf_pipeline

__all__ = ["SOURCE", "FILES", "DEFAULT_FLAGS", "GLOVE_URL", "GLOVE_MD5", "is_prepared", "prepare", "read_raw"]

ARCHIVE = "trainingandtestdata.zip"
TRAIN_CSV = "training.1600000.processed.noemoticon.csv"
TEST_CSV = "testdata.manual.2009.06.14.csv"
RAW_TWEETS = 1_600_000 + 498
FILES = (
    RemoteFile(
        ARCHIVE,
        "https://cs.stanford.edu/people/alecmgo/trainingandtestdata.zip",
        "1647eb110dd2492512e27b9a70d5d1bc",
    ),
)
DEFAULT_FLAGS = LeafFlags(
    sampling="niid",
    fraction=0.05,
    min_samples=3,
    split="sample",
    train_fraction=0.9,
    sampling_seed=1,
    split_seed=2,
)

GLOVE_ZIP = "glove.6B.zip"
GLOVE_URL = "https://nlp.stanford.edu/data/glove.6B.zip"
GLOVE_MD5 = "056ea991adb4740ac6bf1b6d9b50408b"
GLOVE_MEMBER = "glove.6B.50d.txt"  # all four files list the same 400,000 words in the same order
GLOVE_VOCAB = "glove_vocab.txt"


def is_prepared(folder: Path) -> bool:
    """LEAF ``train/`` and ``test/`` JSON present (GloVe is optional: the profile can read its zip)."""
    return leaf_layout_ready(Path(folder))


def read_raw(archive: Path, *, progress: bool = False) -> dict:
    """Both CSVs of the Stanford archive -> one LEAF all-data dict (``combine_data`` + ``data_to_json``)."""
    from tqdm import tqdm

    fix = f"delete {archive.name} and run `afr data fetch sent140` again"
    bar = tqdm(
        total=RAW_TWEETS, unit="tweet", desc="sent140: reading the CSVs", disable=not progress, leave=False
    )
    try:
        with bar, zipfile.ZipFile(archive) as zf:
            names = {n.rsplit("/", 1)[-1]: n for n in zf.namelist()}
            missing = [n for n in (TRAIN_CSV, TEST_CSV) if n not in names]
            if missing:
                raise DataError(f"{archive.name} lacks {', '.join(missing)}", where=str(archive), fix=fix)
            rows: dict[str, list[tuple[list[str], int]]] = {}
            for member, source in ((TRAIN_CSV, "training"), (TEST_CSV, "test")):
                with zf.open(names[member]) as raw:
                    text = io.TextIOWrapper(raw, encoding="ISO-8859-1", newline="")
                    for line, row in enumerate(csv.reader(text), start=1):
                        if len(row) != 6:
                            raise DataError(
                                f"{member} line {line} has {len(row)} columns, expected 6",
                                where=str(archive),
                                fix=fix,
                            )
                        polarity, user = row[0], row[4]
                        rows.setdefault(user, []).append(([*row[1:], source], 1 if polarity == "4" else 0))
                        bar.update()
    except (OSError, zipfile.BadZipFile, csv.Error) as exc:
        raise DataError(f"cannot read {archive.name}: {exc}", where=str(archive), fix=fix) from exc
    users = sorted(rows)
    return {
        "users": users,
        "num_samples": [len(rows[u]) for u in users],
        "user_data": {u: {"x": [x for x, _ in rows[u]], "y": [y for _, y in rows[u]]} for u in users},
    }


def _extract_glove_vocab(folder: Path) -> None:
    archive = folder / GLOVE_ZIP
    fix = f"delete {GLOVE_ZIP} and download it again from {GLOVE_URL}"
    got = file_md5(archive)
    if got != GLOVE_MD5:
        raise DataError(
            f"checksum mismatch for {GLOVE_ZIP}: expected md5 {GLOVE_MD5}, got {got}",
            where=str(archive),
            fix=fix,
        )
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(GLOVE_MEMBER) as fh:
            words = [line.split(b" ", 1)[0].decode("utf-8") for line in fh]
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot read {GLOVE_MEMBER} from {GLOVE_ZIP}: {exc}", where=str(archive), fix=fix
        ) from exc
    fd, tmp = tempfile.mkstemp(prefix=f".{GLOVE_VOCAB}.", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(words) + "\n")
        os.replace(tmp, folder / GLOVE_VOCAB)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prepare(folder: Path, *, progress: bool = True, flags: LeafFlags | None = None) -> None:
    """Raw archive in ``folder`` -> ``folder/{train,test,meta}`` (LEAF JSON), and GloVe's vocabulary
    if ``glove.6B.zip`` is there. Idempotent (an existing LEAF layout is kept) and atomic."""
    folder = Path(folder)
    flags = DEFAULT_FLAGS if flags is None else flags
    if not leaf_layout_ready(folder):
        archive = folder / ARCHIVE
        if not archive.is_file():
            raise DataError(
                f"{ARCHIVE} is missing",
                where=str(folder),
                fix="run `afr data fetch sent140` (or put LEAF's train/ and test/ JSON folders there)",
            )
        from tqdm import tqdm

        all_data = read_raw(archive, progress=progress)
        run_leaf_pipeline(
            [("all_data", all_data)],
            folder,
            flags,
            progress=lambda items: tqdm(
                items, desc="sent140: LEAF sampling and split", disable=not progress, leave=False
            ),
        )
    if (folder / GLOVE_ZIP).is_file() and not (folder / GLOVE_VOCAB).is_file():
        _extract_glove_vocab(folder)


SOURCE = DataSource(FILES, is_prepared=is_prepared, prepare=prepare)
"""The official files and the preparation step that turns them into the layout the loader reads."""
