"""md5s of data files, cached by file identity in the user cache (never in the data folder)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import platformdirs

__all__ = ["file_md5", "cached_md5", "cached_md5s", "md5_cache_file"]


def file_md5(path: Path) -> str:
    """The md5 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def md5_cache_file() -> Path:
    """Where known md5s are cached: ``<user cache>/afr/md5-cache.json`` (never in the data folder, which
    may be read-only or shared)."""
    return Path(platformdirs.user_cache_dir("afr")) / "md5-cache.json"


def _identity(stat: os.stat_result) -> list[int]:
    # ctime too: a rewrite that restores size and mtime (touch -r) still changes it.
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def cached_md5(path: Path) -> str:
    """``file_md5(path)``, from the cache when the file's size, mtime, ctime and inode are unchanged.

    The cache is best effort: unreadable or unwritable (a sandboxed process, a read-only home), the md5 is
    simply computed each time."""
    path = Path(path).resolve()
    return cached_md5s([path])[path]


def cached_md5s(paths: list[Path]) -> dict[Path, str]:
    """:func:`cached_md5` of many files, the cache read and written once (a prepared layout may hold
    thousands of files). Keys are the resolved paths."""
    resolved = [Path(p).resolve() for p in paths]
    cache_file = md5_cache_file()
    try:
        cache = json.loads(cache_file.read_text())
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    out: dict[Path, str] = {}
    changed = False
    for path in resolved:
        identity = _identity(path.stat())
        entry = cache.get(str(path))
        if (
            isinstance(entry, dict)
            and entry.get("identity") == identity
            and isinstance(entry.get("md5"), str)
        ):
            out[path] = entry["md5"]
            continue
        out[path] = digest = file_md5(path)
        if _identity(path.stat()) == identity:  # else it changed while read: do not cache a moving target
            cache[str(path)] = {"identity": identity, "md5": digest}
            changed = True
    if changed:
        cache = {k: v for k, v in cache.items() if Path(k).exists()}  # drop files that are gone
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
            os.replace(tmp, cache_file)
        except OSError:
            pass
    return out
