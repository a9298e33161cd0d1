"""Data files of the profiles: registry of official sources, download, lookup and checks."""

from afr.data._fetch import (
    default_data_dir,
    download_file,
    fetch,
    file_md5,
    forget_download,
    profile_dir,
    require,
    verify,
)
from afr.data._sources import SOURCES, RemoteFile, register_sources, sources_for

__all__ = [
    "RemoteFile",
    "SOURCES",
    "register_sources",
    "sources_for",
    "default_data_dir",
    "profile_dir",
    "require",
    "fetch",
    "verify",
    "download_file",
    "forget_download",
    "file_md5",
]
