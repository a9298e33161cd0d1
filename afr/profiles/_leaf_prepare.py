"""Our implementation of LEAF's preprocessing steps (``data/utils/preprocess.sh``) on all-data dicts.

A LEAF *all-data dict* is ``{"users": [...], "num_samples": [...], "user_data": {u: {"x", "y"}},
"hierarchies": [...]?}``; a dataset is a list of them (LEAF writes one ``all_data_<i>.json`` per
chunk, and niid sampling acts per chunk). The steps, in LEAF's order:

1. sampling (``-s niid|iid --sf f [--iu u]``): :func:`sample_niid` / :func:`sample_iid`;
2. minimum samples per user (``-k k``): :func:`filter_min_samples`;
3. train/test split (``-t sample|user --tf t``): :func:`split_sample` (``sequence_overlap`` gives the
   Shakespeare variant) / :func:`split_user`.

:func:`run_leaf_pipeline` chains them, writes ``train/`` and ``test/`` with :func:`write_leaf_json`
and records the flags and the explicit seeds in ``meta/`` (``sampling_seed.txt``, ``split_seed.txt``
as LEAF does, plus ``afr_leaf.json`` with every flag), and the md5 of every file it wrote in
``.afr-prepared-md5.json`` (checked before each load). Randomness comes from ``numpy``'s
``default_rng(seed)``, so with the same seeds our output is reproducible but not byte-identical to
LEAF's (which uses Python's ``random``). The steps never look inside ``x``: a caller may sample
cheap references (e.g. image names) and decode only the kept samples (see ``femnist.py``).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..data import prepared_files, record_prepared
from ..errors import ConfigError

__all__ = [
    "LeafFlags",
    "sample_niid",
    "sample_iid",
    "filter_min_samples",
    "split_sample",
    "split_user",
    "write_leaf_json",
    "run_leaf_pipeline",
    "leaf_layout_ready",
]

AllData = dict[str, Any]


@dataclass(frozen=True)
class LeafFlags:
    """LEAF's ``preprocess.sh`` flags with explicit seeds (LEAF would default a missing seed to the time)."""

    sampling: Literal["niid", "iid"] | None = "niid"  # -s (None: keep all data, no sampling step)
    fraction: float = 0.1  # --sf
    iid_user_fraction: float = 0.01  # --iu
    min_samples: int = 0  # -k
    split: Literal["sample", "user"] = "sample"  # -t
    train_fraction: float = 0.9  # --tf
    sampling_seed: int = 0  # --smplseed
    split_seed: int = 0  # --spltseed

    def __post_init__(self) -> None:
        if self.sampling not in ("niid", "iid", None):
            raise ConfigError(f"LEAF sampling must be niid, iid or None, got {self.sampling!r}")
        if self.split not in ("sample", "user"):
            raise ConfigError(f"LEAF split must be sample or user, got {self.split!r}")
        for key in ("fraction", "train_fraction", "iid_user_fraction"):
            value = getattr(self, key)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"LEAF {key} must be in (0, 1], got {value!r}")
        if self.min_samples < 0:
            raise ConfigError(f"LEAF min_samples must be >= 0, got {self.min_samples!r}")


def _dict(users: list[str], user_data: dict[str, dict[str, list]], hierarchies: list | None) -> AllData:
    out: AllData = {
        "users": list(users),
        "num_samples": [len(user_data[u]["y"]) for u in users],
        "user_data": {u: user_data[u] for u in users},
    }
    if hierarchies is not None:
        out["hierarchies"] = list(hierarchies)
    return out


def _pick(entry: dict[str, list], indices: Iterable[int]) -> dict[str, list]:
    indices = list(indices)
    return {"x": [entry["x"][i] for i in indices], "y": [entry["y"][i] for i in indices]}


def sample_niid(chunk: AllData, fraction: float, rng: np.random.Generator) -> AllData:
    """LEAF's niid sampling of one chunk: shuffle its users, take whole users until
    ``floor(fraction * total)`` samples; the last user is cut to the remaining count (random samples,
    kept in their original order)."""
    users = list(chunk["users"])
    hier = chunk.get("hierarchies")
    target = int(fraction * sum(chunk["num_samples"]))
    order = rng.permutation(len(users))
    taken: list[str] = []
    taken_hier: list[Any] = []
    data: dict[str, dict[str, list]] = {}
    total = 0
    for i in order:
        if total >= target:
            break
        user = users[i]
        entry = chunk["user_data"][user]
        n = len(entry["y"])
        if total + n > target:
            keep = np.sort(rng.choice(n, size=target - total, replace=False))
            entry = _pick(entry, keep.tolist())
            n = len(entry["y"])
        data[user] = entry
        taken.append(user)
        if hier is not None:
            taken_hier.append(hier[i])
        total += n
    return _dict(taken, data, taken_hier if hier is not None else None)


def sample_iid(
    chunk: AllData, fraction: float, user_fraction: float, rng: np.random.Generator, first_id: int = 0
) -> AllData:
    """LEAF's iid sampling of one chunk: ``floor(fraction * total)`` samples drawn without replacement
    from the pooled chunk, dealt evenly to ``max(1, round(user_fraction * users))`` new users named
    ``str(first_id)``, ``str(first_id + 1)``, ... (no hierarchies: the users are synthetic)."""
    pooled_x: list = []
    pooled_y: list = []
    for user in chunk["users"]:
        pooled_x += chunk["user_data"][user]["x"]
        pooled_y += chunk["user_data"][user]["y"]
    count = int(fraction * len(pooled_y))
    num_users = max(1, round(user_fraction * len(chunk["users"])))
    picked = rng.choice(len(pooled_y), size=count, replace=False)
    data: dict[str, dict[str, list]] = {}
    names = [str(first_id + k) for k in range(num_users)]
    for name, part in zip(names, np.array_split(picked, num_users), strict=True):
        data[name] = {"x": [pooled_x[i] for i in part], "y": [pooled_y[i] for i in part]}
    return _dict(names, data, None)


def filter_min_samples(chunk: AllData, min_samples: int) -> AllData:
    """LEAF's ``-k``: keep the users with at least ``min_samples`` samples."""
    hier = chunk.get("hierarchies")
    keep = [i for i, n in enumerate(chunk["num_samples"]) if n >= min_samples]
    users = [chunk["users"][i] for i in keep]
    return _dict(users, chunk["user_data"], [hier[i] for i in keep] if hier is not None else None)


def split_sample(
    chunk: AllData, train_fraction: float, rng: np.random.Generator, *, sequence_overlap: int | None = None
) -> tuple[AllData, AllData]:
    """LEAF's ``-t sample``: per user with >= 2 samples, ``n_train = max(1, floor(tf * n))``.

    Default: ``n_train`` random indices train, the rest test (both kept in original order).
    ``sequence_overlap=L`` (Shakespeare, L = 80): the first ``n_train`` samples train and the test
    starts at index ``n_train + L - 1``, so no test window overlaps a training window. A user left
    without train or test samples is dropped from both.
    """
    hier = chunk.get("hierarchies")
    train: dict[str, dict[str, list]] = {}
    test: dict[str, dict[str, list]] = {}
    kept: list[str] = []
    kept_hier: list[Any] = []
    for i, user in enumerate(chunk["users"]):
        entry = chunk["user_data"][user]
        n = len(entry["y"])
        if n < 2:
            continue
        n_train = max(1, int(train_fraction * n))
        if sequence_overlap is None:
            chosen = np.zeros(n, dtype=bool)
            chosen[rng.choice(n, size=n_train, replace=False)] = True
            train_idx, test_idx = np.flatnonzero(chosen), np.flatnonzero(~chosen)
        else:
            train_idx = np.arange(n_train)
            test_idx = np.arange(n_train + sequence_overlap - 1, n)
        if len(train_idx) == 0 or len(test_idx) == 0:
            continue
        train[user] = _pick(entry, train_idx.tolist())
        test[user] = _pick(entry, test_idx.tolist())
        kept.append(user)
        if hier is not None:
            kept_hier.append(hier[i])
    hier_out = kept_hier if hier is not None else None
    return _dict(kept, train, hier_out), _dict(kept, test, hier_out)


def split_user(chunk: AllData, train_fraction: float, rng: np.random.Generator) -> tuple[AllData, AllData]:
    """LEAF's ``-t user``: ``floor(tf * U)`` random users go to train, the others to test."""
    hier = chunk.get("hierarchies")
    n_users = len(chunk["users"])
    chosen = set(rng.choice(n_users, size=int(train_fraction * n_users), replace=False).tolist())
    parts = []
    for side in (True, False):
        idx = [i for i in range(n_users) if (i in chosen) == side]
        users = [chunk["users"][i] for i in idx]
        parts.append(_dict(users, chunk["user_data"], [hier[i] for i in idx] if hier is not None else None))
    return parts[0], parts[1]


def write_leaf_json(
    path: Path | str,
    users: Sequence[str],
    user_data: dict[str, dict[str, list]],
    hierarchies: Sequence[str] | None = None,
) -> Path:
    """Write one LEAF JSON file atomically (temp file + ``os.replace``); gzip when ``path`` ends in
    ``.gz``. ``num_samples`` is computed from ``user_data``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = _dict(list(users), user_data, list(hierarchies) if hierarchies is not None else None)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            if path.name.endswith(".gz"):
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
                    gz.write(json.dumps(payload).encode("utf-8"))
            else:
                raw.write(json.dumps(payload).encode("utf-8"))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def leaf_layout_ready(folder: Path | str) -> bool:
    """``folder/train`` and ``folder/test`` both hold LEAF ``*.json`` / ``*.json.gz`` files."""
    folder = Path(folder)

    def has_json(sub: Path) -> bool:
        return sub.is_dir() and any(p.name.endswith((".json", ".json.gz")) for p in sub.iterdir())

    return has_json(folder / "train") and has_json(folder / "test")


def run_leaf_pipeline(
    chunks: Sequence[tuple[str, AllData]],
    folder: Path | str,
    flags: LeafFlags,
    *,
    sequence_overlap: int | None = None,
    materialize: Callable[[list], list] | None = None,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = lambda items: items,
) -> dict[str, Any]:
    """Sample, filter and split named all-data chunks, then write ``folder/{train,test,meta}``.

    ``chunks`` are ``(stem, all_data)`` pairs (one output file pair per chunk, named
    ``<stem>_<flags>_{train,test}.json.gz`` like LEAF's). ``materialize(xs)`` turns kept ``x``
    references into the stored values (default: as is). Everything is built in a temporary folder
    beside ``folder`` and moved into place at the end (``meta``, ``test``, then ``train``), so an
    interrupted run never leaves a layout that :func:`leaf_layout_ready` accepts. Returns the
    summary written to ``meta/afr_leaf.json``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sampling_rng = np.random.default_rng(flags.sampling_seed)
    split_rng = np.random.default_rng(flags.split_seed)
    label = _label(flags)
    build = Path(tempfile.mkdtemp(prefix=".leaf-build-", dir=folder))
    totals = {"users": 0, "train_samples": 0, "test_samples": 0}
    next_iid_user = 0
    try:
        for stem, chunk in progress(chunks):
            if flags.sampling == "niid":
                chunk = sample_niid(chunk, flags.fraction, sampling_rng)
            elif flags.sampling == "iid":
                chunk = sample_iid(
                    chunk, flags.fraction, flags.iid_user_fraction, sampling_rng, next_iid_user
                )
                next_iid_user += len(chunk["users"])
            chunk = filter_min_samples(chunk, flags.min_samples)
            if flags.split == "sample":
                train, test = split_sample(
                    chunk, flags.train_fraction, split_rng, sequence_overlap=sequence_overlap
                )
            else:
                train, test = split_user(chunk, flags.train_fraction, split_rng)
            for side, part in (("train", train), ("test", test)):
                if not part["users"]:
                    continue  # a chunk sampled or filtered down to nothing leaves no file
                if materialize is not None:
                    for user in part["users"]:
                        entry = part["user_data"][user]
                        part["user_data"][user] = {"x": materialize(entry["x"]), "y": entry["y"]}
                write_leaf_json(
                    build / side / f"{stem}_{label}_{side}.json.gz",
                    part["users"],
                    part["user_data"],
                    part.get("hierarchies"),
                )
                totals[f"{side}_samples"] += sum(part["num_samples"])
            totals["users"] += len(set(train["users"]) | set(test["users"]))
        for side in ("train", "test"):
            (build / side).mkdir(exist_ok=True)
            if not any((build / side).iterdir()):
                raise ConfigError(
                    f"LEAF preprocessing with {flags} left no {side} data",
                    where=str(folder),
                    fix="raise the sampling fraction or lower min_samples",
                )
        summary = {"flags": asdict(flags), "sequence_overlap": sequence_overlap, **totals}
        meta = build / "meta"
        meta.mkdir()
        (meta / "sampling_seed.txt").write_text(f"{flags.sampling_seed}\n")
        (meta / "split_seed.txt").write_text(f"{flags.split_seed}\n")
        (meta / "afr_leaf.json").write_text(json.dumps(summary, indent=2) + "\n")
        for name in ("meta", "test", "train"):
            old = folder / name
            if old.exists():
                shutil.rmtree(old)
            os.replace(build / name, old)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    # The md5 of every file just written, beside them: each later load is held to it (afr.data.require).
    record_prepared(
        folder,
        files=[
            f"{name}/{rel}" for name in ("meta", "test", "train") for rel in prepared_files(folder / name)
        ],
    )
    return summary


def _label(flags: LeafFlags) -> str:
    """LEAF-style file label, e.g. ``niid_05_keep_100`` for ``-s niid --sf 0.05 -k 100``."""
    if flags.sampling is None:
        head = "all"
    else:
        frac = f"{flags.fraction:g}"
        head = f"{flags.sampling}_{frac[2:] if frac.startswith('0.') else frac.replace('.', '')}"
    return f"{head}_keep_{flags.min_samples}"
