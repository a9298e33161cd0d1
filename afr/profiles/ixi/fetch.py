"""Fed-IXI (IXI-Tiny): the official zip and FLamby's split file, extracted into the layout the loader reads.

Official files:

* ``7kd5wj7v7p-3.zip`` — IXI-Tiny (TorchIO's 566 T1 brain MRIs with ROBEX brain masks), version 3 of the
  Mendeley dataset ``7kd5wj7v7p`` (the URL FLamby downloads). Mendeley publishes no checksum; the md5
  used here, ``eecb8342…``, is the one a third-party FLamby loader records for this URL
  (``vaseline555/AAggFF``, ``src/datasets/flambyparser.py`` @ 3932c3d). If the upstream zip is ever
  regenerated the fetch fails with a checksum mismatch naming both md5s; set the md5 to ``None`` to fall
  back to recording the md5 of the first complete download in ``<folder>/.afr-md5.json``.
* ``metadata_tiny.csv`` — FLamby's train/test split (``Patient ID, Manufacturer, Split``), pinned to
  FLamby commit ``edacf54d``.

:func:`prepare` extracts, from anywhere below an ``IXI_sample/`` folder of the zip, every subject's
``T1/*.nii.gz`` image and ``label/*.nii.gz`` mask (other modalities are skipped) into
``<folder>/7kd5wj7v7p-3/IXI_sample/IXI<ID>-<Center>-<n>/{T1,label}/`` — FLamby's layout — through a
temporary folder renamed into place, then writes the marker ``.afr-ixi-prepared.json``. The NIfTI files
are read and resized by the profile at load time, as FLamby does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from pathlib import Path

from ...data import DataSource, RemoteFile
from ...errors import DataError

__all__ = [
    "SOURCE",
    "FILES",
    "ZIP_NAME",
    "SUBJECTS_DIR",
    "METADATA",
    "SUBJECT_PATTERN",
    "is_prepared",
    "prepare",
    "subject_dirs",
]

ZIP_NAME = "7kd5wj7v7p-3.zip"
ZIP_URL = f"https://prod-dcd-datasets-cache-zipfiles.s3.eu-west-1.amazonaws.com/{ZIP_NAME}"
ZIP_MD5 = "eecb83422a2685937a955251fa45cb03"
METADATA = "metadata_tiny.csv"
_FLAMBY_COMMIT = "edacf54d5211520583b0133d55ac39b6fda8324b"
METADATA_URL = f"https://raw.githubusercontent.com/owkin/FLamby/{_FLAMBY_COMMIT}/flamby/datasets/fed_ixi/metadata/{METADATA}"

FILES: tuple[RemoteFile, ...] = (
    RemoteFile(ZIP_NAME, ZIP_URL, ZIP_MD5),
    RemoteFile(METADATA, METADATA_URL, "42f65923c99b4490cad517b48a582ca0"),
)

SUBJECTS_DIR = Path("7kd5wj7v7p-3") / "IXI_sample"
"""Where the extracted subjects live, relative to the profile folder (FLamby's layout)."""
SUBJECT_PATTERN = re.compile(r"IXI(\d{3})-(Guys|HH|IOP)-(\d+)")
"""A subject folder: IXI id, center, scan number (e.g. ``IXI002-Guys-0828``)."""
_MEMBER = re.compile(r"(?:.*/)?IXI_sample/(IXI\d{3}-(?:Guys|HH|IOP)-\d+)/(T1|label)/([^/]+\.nii\.gz)")
_MARKER = ".afr-ixi-prepared.json"
_FIX = "delete it and run `afr data fetch ixi` again"


def subject_dirs(folder: Path) -> list[Path]:
    """The extracted subject folders, sorted by name."""
    root = folder / SUBJECTS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and SUBJECT_PATTERN.fullmatch(p.name))


def is_prepared(folder: Path) -> bool:
    """The split file, the marker and as many subject folders as the marker records are in place."""
    marker = folder / _MARKER
    if not (marker.is_file() and (folder / METADATA).is_file()):
        return False
    try:
        expected = int(json.loads(marker.read_text())["subjects"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return len(subject_dirs(folder)) == expected


def prepare(folder: Path, *, progress: bool = True) -> None:
    """Extract the T1 images and brain masks of the downloaded zip (idempotent, atomic)."""
    from tqdm import tqdm

    folder = Path(folder)
    if is_prepared(folder):
        return
    archive = folder / ZIP_NAME
    if not archive.is_file():
        raise DataError(
            f"the IXI-Tiny archive {ZIP_NAME} is missing", where=str(folder), fix="run `afr data fetch ixi`"
        )
    tmp = folder / f".ixi-extract-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [(info, _MEMBER.fullmatch(info.filename)) for info in zf.infolist()]
            wanted = [(info, m) for info, m in members if m is not None and not info.is_dir()]
            if not wanted:
                raise DataError(
                    f"{archive} holds no IXI_sample/<subject>/T1 or label NIfTI files",
                    where=str(archive),
                    fix=_FIX,
                )
            bar = tqdm(wanted, desc="ixi: extracting", unit="file", disable=not progress, leave=False)
            for info, match in bar:
                subject, kind, name = match.groups()
                # The output path is built from the validated name parts only (no path traversal).
                out = tmp / SUBJECTS_DIR / subject / kind / name
                out.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"cannot extract {archive}: {exc}", where=str(archive), fix=_FIX) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    subjects = sorted(p.name for p in (tmp / SUBJECTS_DIR).iterdir())
    incomplete = [
        s
        for s in subjects
        if not all(len(list((tmp / SUBJECTS_DIR / s / k).glob("*.nii.gz"))) == 1 for k in ("T1", "label"))
    ]
    if incomplete:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"{archive}: subject(s) without exactly one T1 image and one label: {', '.join(incomplete[:5])}",
            where=str(archive),
            fix=_FIX,
        )
    target = folder / SUBJECTS_DIR.parts[0]
    shutil.rmtree(target, ignore_errors=True)  # a previous prepare that stopped before its marker
    os.replace(tmp / SUBJECTS_DIR.parts[0], target)
    shutil.rmtree(tmp, ignore_errors=True)
    marker_tmp = folder / (_MARKER + ".tmp")
    marker_tmp.write_text(json.dumps({"subjects": len(subjects), "source": ZIP_NAME}, indent=1))
    os.replace(marker_tmp, folder / _MARKER)


SOURCE = DataSource(FILES, is_prepared=is_prepared, prepare=prepare)
"""The official files and the preparation step that turns them into the layout the loader reads."""
