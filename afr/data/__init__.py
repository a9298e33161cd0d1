"""Data files of the profiles: where they come from (:class:`DataSource`), download, lookup and checks.

Generic machinery only: each profile declares its own source (``afr/profiles/<name>/fetch.py``) and
these functions take it, with the profile's name for its folder ``<data_dir>/<profile>``.
"""

from afr.data._fetch import (
    cached_md5,
    cached_md5s,
    default_data_dir,
    download_file,
    fetch,
    file_md5,
    forget_download,
    md5_cache_file,
    profile_dir,
    require,
    verify,
)
from afr.data._manifest import PREPARED_MANIFEST, prepared_files, record_prepared
from afr.data._sources import DataSource, RemoteFile

__all__ = [
    "RemoteFile",
    "DataSource",
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
    "PREPARED_MANIFEST",
    "prepared_files",
    "record_prepared",
]
