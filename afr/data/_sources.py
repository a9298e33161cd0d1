"""Registry of the official data files each profile needs: where they live and their md5."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from types import ModuleType

from afr.errors import ConfigError

__all__ = ["RemoteFile", "SOURCES", "register_sources", "sources_for", "prepare_module", "known_profiles"]

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


_UCI_HEART = "https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease"
_FLAMBY_COMMIT = "edacf54d5211520583b0133d55ac39b6fda8324b"
_FLAMBY_RAW = f"https://raw.githubusercontent.com/owkin/FLamby/{_FLAMBY_COMMIT}"


def _uci_heart(filename: str, md5: str) -> RemoteFile:
    return RemoteFile(filename, f"{_UCI_HEART}/{filename}", md5)


def _flamby(repo_path: str, md5: str) -> RemoteFile:
    return RemoteFile(PurePosixPath(repo_path).name, f"{_FLAMBY_RAW}/{repo_path}", md5)


#: profile name -> files it needs; layout on disk is ``<data_dir>/<profile>/<filename>``.
SOURCES: dict[str, tuple[RemoteFile, ...]] = {
    "heart_disease": (
        _uci_heart("processed.cleveland.data", "2d91a8ff69cfd9616aa47b59d6f843db"),
        _uci_heart("processed.hungarian.data", "22e96bee155b5973568101c93b3705f6"),
        _uci_heart("processed.switzerland.data", "9a87f7577310b3917730d06ba9349e20"),
        _uci_heart("processed.va.data", "4249d03ca7711e84f4444768c9426170"),
    ),
    "tcga_brca": (
        _flamby("flamby/datasets/fed_tcga_brca/brca.csv", "989df4ddec084f749d9593146d7ba92f"),
        _flamby("flamby/datasets/fed_tcga_brca/centers.csv", "03f23a40c35dfb8460b910d090e98dd5"),
        _flamby(
            "flamby/datasets/fed_tcga_brca/dataset_creation_scripts/train_test_split.csv",
            "e648057e47463ee7763924d779cd7f2d",
        ),
    ),
    "synthetic": (),  # generated on the fly: nothing to download
}


def register_sources(profile: str, files: Iterable[RemoteFile], *, replace: bool = False) -> None:
    """Declare the files ``profile`` needs. Re-registering the same files is a no-op;
    registering different ones raises ``ConfigError`` unless ``replace=True``."""
    files = tuple(files)
    if not all(isinstance(f, RemoteFile) for f in files):
        raise ConfigError(f"register_sources({profile!r}, ...) expects RemoteFile items")
    names = [f.filename for f in files]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate filenames registered for data profile {profile!r}: {names}")
    if not replace and SOURCES.get(profile, files) != files:
        raise ConfigError(
            f"data profile {profile!r} is already registered with different files",
            fix="pass replace=True to override the registered files",
        )
    SOURCES[profile] = files


PREPARE_PACKAGE = "afr.data.prepare"


def prepare_module(profile: str) -> ModuleType | None:
    """``afr.data.prepare.<profile>`` if it exists: its ``FILES``, ``is_prepared(folder)`` and
    ``prepare(folder, progress=...)`` turn the official raw files into the layout the loader reads."""
    if not isinstance(profile, str) or not profile.isidentifier() or profile.startswith("_"):
        return None
    name = f"{PREPARE_PACKAGE}.{profile}"
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def known_profiles() -> list[str]:
    """Every data profile: registered in :data:`SOURCES` or with a module in ``afr.data.prepare``."""
    package = importlib.import_module(PREPARE_PACKAGE)
    modules = {m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")}
    return sorted(set(SOURCES) | modules)


def sources_for(profile: str) -> tuple[RemoteFile, ...]:
    """The files registered for ``profile``; ``ConfigError`` listing known profiles if unknown."""
    if isinstance(profile, str) and profile in SOURCES:
        return SOURCES[profile]
    module = prepare_module(profile)
    if module is not None:
        return tuple(module.FILES)
    raise ConfigError(
        f"unknown data profile {profile!r}",
        fix=f"use one of: {', '.join(known_profiles())}",
    )
