"""Locate, download (resumable, md5-verified, atomic) and check the data files of a profile's source."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import platformdirs
from tqdm import tqdm

from afr.data._md5 import cached_md5, cached_md5s, file_md5, md5_cache_file
from afr.data._sources import DataSource, RemoteFile
from afr.errors import ChecksumError, DataError

__all__ = [
    "default_data_dir",
    "profile_dir",
    "require",
    "fetch",
    "verify",
    "download_file",
    "forget_download",
    "file_md5",
    "cached_md5",
    "cached_md5s",
    "md5_cache_file",
]

_CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def default_data_dir() -> Path:
    """``$AFR_DATA_DIR`` if set, else the per-user cache folder ``<user cache>/afr/data``."""
    env = os.environ.get("AFR_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("afr")) / "data"


def profile_dir(profile: str, data_dir: Path | str | None = None) -> Path:
    """Folder holding ``profile``'s files: ``<data_dir>/<profile>`` (``data_dir`` defaults to
    :func:`default_data_dir`)."""
    base = default_data_dir() if data_dir is None else Path(data_dir).expanduser()
    return base / profile


def _fetch_hint(profile: str, data_dir: Path | str | None) -> str:
    cmd = f"afr data fetch {profile}"
    if data_dir is not None:
        cmd += f" --data-dir {data_dir}"
    return cmd


def require(profile: str, source: DataSource, data_dir: Path | str | None = None) -> Path:
    """Return ``profile``'s folder if every file of ``source`` is there, not empty and with its md5
    (published, or recorded at the first download), or, for a source with a preparation step, if its
    prepared layout is complete; else raise ``DataError`` naming the file and the fix.

    The md5s are cached by file identity (size, mtime, ctime, inode; see :func:`cached_md5`), so this
    stays cheap enough to call on every load; a changed file is hashed again."""
    folder = profile_dir(profile, data_dir)
    if source.is_prepared is not None:
        if source.is_prepared(folder):
            from afr.data._manifest import check_prepared

            # The prepared files against the md5s recorded when they were made (or first used).
            check_prepared(profile, source, folder, _fetch_hint(profile, data_dir))
            return folder
        raise DataError(
            f"the data of profile {profile!r} is missing or incomplete",
            where=str(folder),
            fix=f"run `{_fetch_hint(profile, data_dir)}` (downloads the official files and preprocesses "
            "them), or set AFR_DATA_DIR / data_dir=... to a folder that holds them",
        )
    missing = [f.filename for f in source.files if not (folder / f.filename).is_file()]
    if missing:
        raise DataError(
            f"missing data file(s) for profile {profile!r}: {', '.join(missing)}",
            where=str(folder),
            fix=f"run `{_fetch_hint(profile, data_dir)}` "
            "(or set AFR_DATA_DIR / data_dir=... to a folder that holds them)",
        )
    for rf in source.files:
        _check_file(profile, rf, folder, data_dir)
    return folder


def _check_file(profile: str, rf: RemoteFile, folder: Path, data_dir: Path | str | None) -> None:
    """Stop before any training on an empty or altered data file (``afr data verify`` would flag it)."""
    path = folder / rf.filename
    verify_cmd = _fetch_hint(profile, data_dir).replace("afr data fetch", "afr data verify", 1)
    fix = (
        f"run `{verify_cmd}` to check every file and `{_fetch_hint(profile, data_dir)}` to download "
        "the bad ones again (or point AFR_DATA_DIR / data_dir=... to an intact copy)"
    )
    if path.stat().st_size == 0:
        raise DataError(f"data file {rf.filename} of profile {profile!r} is empty", where=str(path), fix=fix)
    expected = _expected_md5(rf, folder)
    if expected is None:
        return  # no published md5 and none recorded (copied in by hand): nothing to hold it to
    got = cached_md5(path)
    if got != expected:
        raise DataError(
            f"data file {rf.filename} of profile {profile!r} was altered or corrupted "
            f"(md5 {got}, expected {expected})",
            where=str(path),
            fix=fix,
        )


def verify(profile: str, source: DataSource, data_dir: Path | str | None = None) -> dict[str, bool]:
    """md5-check the files of ``source`` in ``profile``'s folder, and the prepared files its manifest
    records (:mod:`afr.data._manifest`): ``{filename: ok}``; a missing file counts as not ok."""
    from afr.data._manifest import recorded_prepared

    folder = profile_dir(profile, data_dir)
    results = {
        f.filename: (folder / f.filename).is_file()
        and file_md5(folder / f.filename) == _expected_md5(f, folder)
        for f in source.files
    }
    for name, expected in recorded_prepared(folder).items():
        results[name] = (folder / name).is_file() and file_md5(folder / name) == expected
    return results


_RECORDED = ".afr-md5.json"


def _recorded(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / _RECORDED).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _expected_md5(rf: RemoteFile, folder: Path) -> str | None:
    """The published md5, else the one recorded at the first complete download (None: nothing yet)."""
    return rf.md5 if rf.md5 is not None else _recorded(folder).get(rf.filename)


def _record_md5(folder: Path, filename: str, md5: str) -> None:
    recorded = _recorded(folder)
    recorded[filename] = md5
    tmp = folder / (_RECORDED + ".tmp")
    tmp.write_text(json.dumps(recorded, indent=1, sort_keys=True))
    os.replace(tmp, folder / _RECORDED)


def fetch(
    profile: str,
    source: DataSource,
    data_dir: Path | str | None = None,
    *,
    mirror: str | None = None,
    progress: bool = True,
    timeout: float = 60,
) -> list[Path]:
    """Download every file of ``source`` that is missing or has a wrong md5 into ``profile``'s folder,
    then run the source's preparation step if it has one; return the paths of all its files. A source
    whose prepared layout is already complete (e.g. LEAF JSON put there by hand) is left as is.
    ``mirror`` replaces the official URLs by ``<mirror>/<profile>/<filename>`` (an http(s)/file URL,
    or a local folder laid out like the data dir)."""
    folder = profile_dir(profile, data_dir)
    if source.is_prepared is not None and source.is_prepared(folder):
        return [folder / rf.filename for rf in source.files if (folder / rf.filename).is_file()]
    hint = _fetch_hint(profile, data_dir) + (f" --mirror {mirror}" if mirror is not None else "")
    paths = [
        download_file(profile, rf, data_dir, mirror=mirror, progress=progress, timeout=timeout, hint=hint)
        for rf in source.files
    ]
    if source.prepare is not None:
        from afr.data._manifest import record_prepared

        source.prepare(folder, progress=progress)
        record_prepared(folder, exclude=[rf.filename for rf in source.files])
    return paths


def download_file(
    profile: str,
    rf: RemoteFile,
    data_dir: Path | str | None = None,
    *,
    mirror: str | None = None,
    progress: bool = True,
    timeout: float = 60,
    hint: str | None = None,
) -> Path:
    """One file into ``<data_dir>/<profile>/<rf.filename>`` unless it is there with the right md5
    (published, or recorded at its first download); resumable, atomic. ``hint`` is the command a
    failure message suggests (default: ``afr data fetch <profile>``). Returns the file's path."""
    folder = profile_dir(profile, data_dir)
    dest = folder / rf.filename
    if dest.is_file() and file_md5(dest) == _expected_md5(rf, folder):
        return dest
    url = rf.url if mirror is None else _mirror_url(mirror, profile, rf.filename)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the data folder: {exc.strerror or exc}",
            where=str(dest.parent),
            fix="choose a writable folder with --data-dir / data_dir=... or AFR_DATA_DIR",
        ) from None
    _download(rf, url, folder, hint or _fetch_hint(profile, data_dir), progress=progress, timeout=timeout)
    return dest


def forget_download(folder: Path | str, filename: str) -> None:
    """Delete a downloaded file and the md5 recorded for it, so the next fetch starts clean."""
    folder = Path(folder)
    (folder / filename).unlink(missing_ok=True)
    recorded = _recorded(folder)
    if recorded.pop(filename, None) is not None:
        tmp = folder / (_RECORDED + ".tmp")
        tmp.write_text(json.dumps(recorded, indent=1, sort_keys=True))
        os.replace(tmp, folder / _RECORDED)


def _mirror_url(mirror: str, profile: str, filename: str) -> str:
    if "://" not in mirror:
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return f"{mirror.rstrip('/')}/{urllib.parse.quote(profile)}/{urllib.parse.quote(filename)}"


class _RangeNotSatisfiable(Exception):
    """The server refused our resume offset (416): the .part is complete or garbage."""


class _Restart(Exception):
    """The server answered a resume with an unexpected range: start over from byte zero."""


def _download(rf: RemoteFile, url: str, folder: Path, hint: str, *, progress: bool, timeout: float) -> None:
    """Fetch ``url`` into ``folder / rf.filename`` via a ``.part`` file beside it; ``hint`` is the
    command to suggest on failure."""
    dest = folder / rf.filename
    part = dest.with_name(dest.name + ".part")
    expected = _expected_md5(rf, folder)

    def network_error(reason: object) -> DataError:
        return DataError(
            f"could not download {url}: {reason}",
            where=str(part if part.exists() else dest),
            fix=f"check the network (or the --mirror URL) and run `{hint}` again"
            + ("; the partial download will be resumed" if part.exists() else ""),
        )

    for attempt in range(2):
        offset = part.stat().st_size if part.is_file() else 0
        try:
            got = _stream(url, part, offset, rf.filename, progress=progress, timeout=timeout)
        except _RangeNotSatisfiable:
            if attempt == 0 and expected is not None and file_md5(part) == expected:
                got = expected
            else:
                part.unlink(missing_ok=True)
                continue
        except _Restart:
            part.unlink(missing_ok=True)
            continue
        except urllib.error.HTTPError as exc:
            exc.close()
            raise network_error(f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise network_error(exc.reason) from None
        except (OSError, http.client.HTTPException) as exc:
            raise network_error(str(exc) or type(exc).__name__) from None
        break
    else:
        raise network_error("the server answered the resume request with an unusable range twice")

    if expected is None:
        # No published checksum: trust this first complete download and hold later ones to it.
        _record_md5(folder, rf.filename, got)
    elif got != expected:
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"checksum mismatch for {rf.filename}: expected md5 {expected}, got {got} "
            f"(downloaded from {url})",
            where=str(dest.parent),
            fix=f"the download was corrupted or the source changed (the bad copy was deleted): run "
            f"`{hint}` again; if it keeps failing, try another --mirror",
        )
    os.replace(part, dest)


def _stream(url: str, part: Path, offset: int, label: str, *, progress: bool, timeout: float) -> str:
    """Append the remote bytes from ``offset`` on to ``part`` (or rewrite it if the server
    ignores Range) and return the md5 of the whole ``part``."""
    request = urllib.request.Request(url, headers={"User-Agent": "afr-data-fetch"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            exc.close()
            raise _RangeNotSatisfiable from None
        raise

    with response:
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if offset and response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise _Restart
            total = int(match.group(3)) if match.group(3) != "*" else None
        else:
            offset = 0  # the server ignored Range (plain 200, or a file: URL): restart from zero
            total = length
        if total is None and length is not None:
            total = offset + length

        digest = hashlib.md5(usedforsecurity=False)
        if offset:
            with open(part, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)

        written = offset
        bar = tqdm(
            total=total,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            disable=not (progress and sys.stderr.isatty()),
            leave=False,
        )
        with bar, open(part, "ab" if offset else "wb") as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    # http.client returns a short body silently when the peer closes early: check it ourselves.
    # (A body longer than announced is left to the md5 check.)
    if total is not None and written < total:
        raise ConnectionError(f"connection closed after {written} of {total} bytes")
    return digest.hexdigest()
