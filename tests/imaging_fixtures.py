"""Small, format-faithful raw data for the imaging profiles, generated in a test's tmp folder.

* IXI-Tiny: ``7kd5wj7v7p-3.zip`` laid out like the official download
  (``7kd5wj7v7p-3/IXI_sample/IXI<ID>-<Center>-<n>/{T1,T2,label}/IXI<ID>-<Center>-<n>_{image,label}.nii.gz``)
  and a ``metadata_tiny.csv`` with FLamby's columns (``Patient ID, Manufacturer, Split``).
* KiTS19: ``anony_sites.csv`` (``case,site_id``, 300 rows, giving FLamby's six silos) and, per silo case,
  ``case_XXXXX_imaging.nii.gz`` (int16 HU, spacing in the affine's diagonal, slice axis first) and
  ``case_XXXXX_segmentation.nii.gz`` (uint8: 0 background, 1 kidney, 2 tumour).

Volumes are tiny ellipsoids with noise; nothing here is real data.
"""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = [
    "IXI_SUBJECTS",
    "ixi_subject_name",
    "write_ixi_raw",
    "kits_cases",
    "write_kits_sites",
    "write_kits_case",
    "write_kits_raw",
    "nifti_gz",
    "md5_of",
]

IXI_CENTERS = ("Guys", "HH", "IOP")
IXI_SUBJECTS: tuple[tuple[int, str, str], ...] = (
    (2, "Guys", "test"),
    (16, "Guys", "train"),
    (19, "Guys", "train"),
    (20, "Guys", "train"),
    (12, "HH", "test"),
    (13, "HH", "train"),
    (14, "HH", "train"),
    (35, "IOP", "train"),
    (230, "IOP", "train"),
    (231, "IOP", "test"),
)
"""(patient ID, center, split) of the default IXI fixture: 3/1 Guys, 2/1 HH, 2/1 IOP train/test."""


def md5_of(path: Path) -> str:
    return hashlib.md5(Path(path).read_bytes(), usedforsecurity=False).hexdigest()


def nifti_gz(array: np.ndarray, spacing: Sequence[float]) -> bytes:
    """A gzipped NIfTI-1 file holding ``array`` with ``spacing`` on the affine's diagonal."""
    affine = np.diag([*map(float, spacing), 1.0])
    return gzip.compress(nib.Nifti1Image(array, affine).to_bytes(), mtime=0)


def _ellipsoid(shape: Sequence[int], centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    grid = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def ixi_subject_name(patient: int, center: str) -> str:
    return f"IXI{patient:03d}-{center}-{1000 + patient:04d}"


def write_ixi_raw(
    folder: Path,
    subjects: Iterable[tuple[int, str, str]] = IXI_SUBJECTS,
    *,
    shape: Sequence[int] = (20, 12, 14),
    seed: int = 0,
) -> Path:
    """Write ``7kd5wj7v7p-3.zip`` and ``metadata_tiny.csv`` into ``folder``; return the zip's path."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = ["Patient ID,Manufacturer,Split"]
    archive = folder / "7kd5wj7v7p-3.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        root = "7kd5wj7v7p-3/IXI_sample/"
        zf.writestr(root, b"")
        for k, (patient, center, split) in enumerate(subjects):
            name = ixi_subject_name(patient, center)
            centre = [n / 2 + rng.uniform(-1, 1) for n in shape]
            mask = _ellipsoid(shape, centre, [n / 3 for n in shape]).astype(np.uint8)
            image = (rng.normal(40, 5, shape) + 200 * mask).astype(np.float32)
            spacing = (2.0, 4.0, 3.0)
            zf.writestr(f"{root}{name}/T1/{name}_image.nii.gz", nifti_gz(image, spacing))
            zf.writestr(f"{root}{name}/label/{name}_label.nii.gz", nifti_gz(mask, spacing))
            if k % 2 == 0:  # other modalities exist in the archive; the loader must ignore them
                zf.writestr(f"{root}{name}/T2/{name}_image.nii.gz", nifti_gz(image[::-1].copy(), spacing))
            rows.append(f"{patient},{IXI_CENTERS.index(center)},{split}")
        zf.writestr(f"{root}README.txt", b"not a subject")
    (folder / "metadata_tiny.csv").write_text("\n".join(rows))
    return archive


def kits_cases() -> list[int]:
    """Every case of FLamby's six silos, in silo order."""
    from afr.profiles.kits19.fetch import SILOS

    return [case for _, cases in SILOS for case in cases]


def write_kits_sites(folder: Path) -> Path:
    """``anony_sites.csv``: FLamby's silo cases at their sites, every other case at a site of its own."""
    from afr.profiles.kits19.fetch import SILOS

    site_of = {case: site for site, cases in SILOS for case in cases}
    lines = ["case,site_id"] + [f"case_{c:05d},{site_of.get(c, 100 + c)}" for c in range(300)]
    path = folder / "anony_sites.csv"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_kits_case(
    folder: Path,
    case: int,
    *,
    shape: Sequence[int] = (8, 32, 32),
    spacing: Sequence[float] = (6.0, 1.5625, 1.5625),
    tumour: bool = True,
    seed: int = 0,
) -> tuple[Path, Path]:
    """One case's CT volume (air -1000 HU, body, a kidney, maybe a tumour, a zero border) and its mask."""
    rng = np.random.default_rng(seed * 1000 + case)
    body = _ellipsoid(shape, [n / 2 for n in shape], [shape[0], shape[1] * 0.45, shape[2] * 0.45])
    kidney = _ellipsoid(shape, [shape[0] / 2, shape[1] * 0.55, shape[2] * 0.4], [shape[0] / 2.5, 5, 4])
    seg = kidney.astype(np.uint8)
    if tumour:
        seg[_ellipsoid(shape, [shape[0] / 2, shape[1] * 0.55 + 2, shape[2] * 0.4], [1.5, 2, 2]) & kidney] = 2
    hu = np.where(body, rng.normal(30, 10, shape), -1000.0)
    hu = np.where(seg == 1, rng.normal(150, 15, shape), hu)
    hu = np.where(seg == 2, rng.normal(90, 15, shape), hu)
    hu[:, :2, :] = 0  # outside the scanner's field of view: cropped away by the nonzero crop
    image_path = folder / f"case_{case:05d}_imaging.nii.gz"
    seg_path = folder / f"case_{case:05d}_segmentation.nii.gz"
    folder.mkdir(parents=True, exist_ok=True)
    image_path.write_bytes(nifti_gz(hu.astype(np.int16), spacing))
    seg_path.write_bytes(nifti_gz(seg, spacing))
    return image_path, seg_path


def write_kits_raw(folder: Path, cases: Iterable[int] | None = None, **case_options: object) -> list[int]:
    """``anony_sites.csv`` and the raw files of ``cases`` (default: all 96 silo cases); every fifth case
    has no tumour. Returns the cases written."""
    write_kits_sites(folder)
    written = list(kits_cases() if cases is None else cases)
    for i, case in enumerate(written):
        options = {"tumour": i % 5 != 4, **case_options}
        write_kits_case(folder, case, **options)  # type: ignore[arg-type]
    return written
