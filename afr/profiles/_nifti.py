"""Reading NIfTI volumes (nibabel) with one clear error for any unreadable file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["read_nifti"]


def read_nifti(path: Path, fix: str) -> tuple[np.ndarray, tuple[float, ...]]:
    """A NIfTI volume as float32 array and its voxel spacing; unreadable files raise one ``DataError``."""
    import nibabel as nib

    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj, dtype=np.float32)
        zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    except Exception as exc:  # nibabel raises many types (ImageFileError, EOFError, zlib.error, ...)
        raise DataError(f"cannot read the NIfTI file {path}: {exc}", where=str(path), fix=fix) from exc
    if data.ndim != 3:
        raise DataError(
            f"{path} holds a {data.ndim}-D array, expected a 3-D volume", where=str(path), fix=fix
        )
    return data, zooms
