"""Where a profile's data comes from: the official files (URL and md5) and an optional preparation step."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from afr.errors import ConfigError

__all__ = ["RemoteFile", "DataSource"]

_MD5 = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class RemoteFile:
    """One published file: its name inside the profile folder, its official URL and its md5.

    ``md5=None`` means the upstream publishes no checksum: the md5 of the first complete download is
    recorded in ``<profile folder>/.afr-md5.json`` and every later fetch or verify is checked against it.
    """

    filename: str
    url: str
    md5: str | None

    def __post_init__(self) -> None:
        # The filename becomes a local path: refuse anything that could escape the profile folder.
        parts = PurePosixPath(self.filename).parts
        if not parts or self.filename.startswith("/") or ".." in parts or "\\" in self.filename:
            raise ConfigError(
                f"invalid data filename {self.filename!r}",
                fix="use a relative POSIX path without '..' (e.g. 'train/part0.json')",
            )
        if self.md5 is not None and not _MD5.fullmatch(self.md5):
            raise ConfigError(
                f"invalid md5 {self.md5!r} for data file {self.filename!r}",
                fix="give the 32 lowercase hex digits printed by `md5sum`",
            )


@dataclass(frozen=True)
class DataSource:
    """The data of one profile: the official ``files`` to download into its folder and, for data that
    needs preprocessing, ``is_prepared(folder)`` (the layout the loader reads is complete) and
    ``prepare(folder, *, progress=True)`` (raw files -> that layout; idempotent, atomic).

    Generated data (e.g. synthetic) is a source with no files. ``afr data fetch <profile>`` downloads
    the files and then calls ``prepare``.
    """

    files: tuple[RemoteFile, ...] = ()
    is_prepared: Callable[[Path], bool] | None = None
    prepare: Callable[..., Any] | None = None

    def __post_init__(self) -> None:
        files = tuple(self.files)
        if not all(isinstance(f, RemoteFile) for f in files):
            raise ConfigError("DataSource(files=...) expects RemoteFile items")
        names = [f.filename for f in files]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate filenames in a data source: {names}")
        if (self.is_prepared is None) != (self.prepare is None):
            raise ConfigError(
                "a data source with a preparation step needs both is_prepared and prepare",
                fix="give both functions, or neither (the downloaded files are then read as they are)",
            )
        object.__setattr__(self, "files", files)  # a list given by the caller becomes a tuple
