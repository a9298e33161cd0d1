"""Manifests of prepared data: the md5 of every file a preparation step wrote, checked before training.

Downloaded files are held to their md5 (published, or recorded at the first download). A prepared layout
(LEAF JSON, extracted images) is AFR's own output, so nothing upstream vouches for it: :func:`record_prepared`
writes the md5s of its files into ``<folder>/.afr-prepared-md5.json`` as it is made, and
:func:`check_prepared` (called by ``require`` before every load) holds the files to them through the md5
cache, so once hashed a check costs a ``stat`` per file.

Where the folder refuses the write (read-only, shared), the manifest goes to the user cache instead
(``<user cache>/afr/prepared/<profile>-<hash of the folder>.json``), next to the md5 cache: it is per user
anyway, and a check never writes into a data folder. A layout AFR did not prepare -- LEAF JSON put there by
hand, like the subsets in a shared read-only folder -- has no manifest and keeps its layout check only: as
for a download without a published md5, there is nothing trustworthy to hold it to (recording whatever is
found at first use would also turn every legitimate regeneration of such files into an error).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs

from afr.data._md5 import cached_md5s
from afr.data._sources import DataSource
from afr.errors import DataError

__all__ = [
    "PREPARED_MANIFEST",
    "prepared_files",
    "record_prepared",
    "recorded_prepared",
    "check_prepared",
    "user_record_path",
]

PREPARED_MANIFEST = ".afr-prepared-md5.json"  # not isic2019's own ".afr-prepared.json" marker
_TEMPORARY = (".part", ".tmp")


def prepared_files(folder: Path | str, exclude: Iterable[str] = ()) -> list[str]:
    """The files of a prepared layout, as sorted relative POSIX paths: every file under ``folder`` but
    ``exclude`` (the downloads, which have md5s of their own), hidden entries (AFR's ``.afr-*`` records, build
    folders) and partial files."""
    folder = Path(folder)
    skip = set(exclude)
    names = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        name = relative.as_posix()
        if any(part.startswith(".") for part in relative.parts) or name in skip:
            continue
        if path.name.endswith(_TEMPORARY) or not path.is_file():
            continue
        names.append(name)
    return sorted(names)


def user_record_path(folder: Path | str) -> Path:
    """Where the record of ``folder`` goes when it cannot (or must not) be written into the folder itself."""
    folder = Path(folder).resolve()
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    return Path(platformdirs.user_cache_dir("afr")) / "prepared" / f"{folder.name}-{digest}.json"


def _record(folder: Path, names: list[str]) -> dict[str, Any]:
    paths = [(folder / name).resolve() for name in names]
    md5s = cached_md5s(paths)
    return {
        "format": 1,
        "folder": str(folder),
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {name: md5s[path] for name, path in zip(names, paths, strict=True)},
    }


def _write(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def record_prepared(
    folder: Path | str, *, files: Iterable[str] | None = None, exclude: Iterable[str] = ()
) -> Path:
    """Record the md5 of each prepared file (``files``, relative to ``folder``; default: every file of
    :func:`prepared_files` but ``exclude``) in ``<folder>/.afr-prepared-md5.json``; in the user cache when the
    folder refuses the write. Returns where the manifest went."""
    folder = Path(folder).resolve()
    names = sorted(files) if files is not None else prepared_files(folder, exclude)
    record = _record(folder, names)
    target = folder / PREPARED_MANIFEST
    try:
        _write(target, record)
    except OSError:
        target = user_record_path(folder)
        _write(target, record)
    stale = user_record_path(folder)
    if target != stale:  # the record of an earlier preparation that could not write here
        with contextlib.suppress(OSError):
            stale.unlink()
    return target


def _load(path: Path) -> dict[str, str] | None:
    """The files of the manifest at ``path``; None if there is none; ``DataError`` if it is unreadable."""
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text()).get("files")
        if isinstance(files, dict) and all(isinstance(v, str) for v in files.values()):
            return {str(k): v for k, v in files.items()}
    except (OSError, ValueError, AttributeError):
        pass
    raise DataError(
        "the manifest of the prepared data is unreadable",
        where=str(path),
        fix="delete it and prepare the data again (`afr data fetch ...`)",
    )


def recorded_prepared(folder: Path | str) -> dict[str, str]:
    """The prepared files recorded for ``folder`` and their md5s (empty when AFR did not prepare it)."""
    folder = Path(folder).resolve()
    return _load(folder / PREPARED_MANIFEST) or _load(user_record_path(folder)) or {}


def check_prepared(profile: str, source: DataSource, folder: Path | str, fetch_hint: str) -> None:
    """Hold the prepared files of ``folder`` to their manifest: a missing, altered or extra file is a
    ``DataError`` naming it, before anything is trained (nothing to check without a manifest)."""
    folder = Path(folder).resolve()
    manifest, path = _load(folder / PREPARED_MANIFEST), folder / PREPARED_MANIFEST
    if manifest is None:
        manifest, path = _load(user_record_path(folder)), user_record_path(folder)
    if manifest is None:
        return  # not prepared by AFR (placed by hand): the layout check of require() is all there is
    downloads = [rf.filename for rf in source.files]
    tops = sorted({name.split("/")[0] + ("/" if "/" in name else "") for name in manifest})
    fix = (
        f"prepare the data again: remove {', '.join(tops)} in {folder} and run `{fetch_hint}` (the downloads "
        "are kept), or point AFR_DATA_DIR / data_dir=... to an intact copy"
    )
    missing = [name for name in manifest if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"prepared data file {missing[0]} of profile {profile!r} is missing "
            f"({len(missing)} of the {len(manifest)} files recorded in {path.name})",
            where=str(folder / missing[0]),
            fix=fix,
        )
    # A file added beside the recorded ones would be read too (a loader takes every JSON of train/).
    recorded_dirs = {str(Path(name).parent) for name in manifest} - {"."}  # not the folder's own files
    extra = [
        name
        for name in prepared_files(folder, downloads)
        if name not in manifest and str(Path(name).parent) in recorded_dirs
    ]
    if extra:
        raise DataError(
            f"prepared data file {extra[0]} of profile {profile!r} was not part of the prepared data "
            f"({len(extra)} file(s) not recorded in {path.name})",
            where=str(folder / extra[0]),
            fix=f"remove it; or {fix}",
        )
    paths = {name: (folder / name).resolve() for name in manifest}
    got = cached_md5s(list(paths.values()))
    for name, expected in manifest.items():
        if got[paths[name]] != expected:
            raise DataError(
                f"prepared data file {name} of profile {profile!r} was altered or corrupted "
                f"(md5 {got[paths[name]]}, recorded {expected} in {path})",
                where=str(folder / name),
                fix=fix,
            )
