"""Reading Fed-IXI: subjects -> centers from the folder name, FLamby's split file and preprocessing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.transforms import AsDiscrete, NormalizeIntensity, Resize
from torch import Tensor

from ...errors import DataError
from .._base import ClientData
from .._nifti import read_nifti
from .fetch import METADATA, SUBJECT_PATTERN, subject_dirs

__all__ = ["CENTERS", "IMAGE_SHAPE", "preprocess_subject", "load_centers"]

CENTERS = ("Guys", "HH", "IOP")
IMAGE_SHAPE = (48, 60, 48)
_FIX = "run `afr data fetch ixi` (it re-extracts the archive if the folder is incomplete)"


def _plain(tensor: Any) -> Tensor:
    """A MONAI MetaTensor (or any tensor) as a plain ``torch.Tensor``."""
    return tensor.as_tensor() if hasattr(tensor, "as_tensor") else torch.as_tensor(tensor)


def preprocess_subject(image: np.ndarray, label: np.ndarray) -> tuple[Tensor, Tensor]:
    """FLamby's IXI preprocessing of one subject -> image (1, 48, 60, 48), label (2, 48, 60, 48), float32."""
    resize = Resize(IMAGE_SHAPE, mode="area")
    x = _plain(NormalizeIntensity()(resize(torch.from_numpy(image)[None])))
    y = _plain(AsDiscrete(to_onehot=2)(resize(torch.from_numpy(label)[None])))
    return x.float(), y.float()


def load_centers(folder: Path) -> tuple[list[ClientData], list[ClientData]]:
    """Every center's (train, test) from a prepared folder: float16 images, uint8 one-hot labels."""
    splits = _read_splits(folder / METADATA)
    rows: dict[tuple[int, str], list[tuple[Tensor, Tensor]]] = {}
    for subject in subject_dirs(folder):
        match = SUBJECT_PATTERN.fullmatch(subject.name)
        assert match is not None  # subject_dirs only lists matching folders
        patient, center = int(match.group(1)), match.group(2)
        if patient not in splits:
            raise DataError(
                f"subject {subject.name} has no row in {METADATA}", where=str(folder / METADATA), fix=_FIX
            )
        image, _ = read_nifti(_single(subject / "T1"), _FIX)
        label, _ = read_nifti(_single(subject / "label"), _FIX)
        x, y = preprocess_subject(image, label)
        rows.setdefault((CENTERS.index(center), splits[patient]), []).append(
            (x.to(torch.float16), y.to(torch.uint8))
        )
    train, test = [], []
    for k, center in enumerate(CENTERS):
        for split, out in (("train", train), ("test", test)):
            samples = rows.get((k, split), [])
            if not samples:
                raise DataError(
                    f"center {center} has no {split} subject in {folder}", where=str(folder), fix=_FIX
                )
            out.append(ClientData(torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])))
    return train, test


def _single(folder: Path) -> Path:
    files = sorted(folder.glob("*.nii.gz"))
    if len(files) != 1:
        raise DataError(
            f"expected one .nii.gz file in {folder}, found {len(files)}", where=str(folder), fix=_FIX
        )
    return files[0]


def _read_splits(path: Path) -> dict[int, str]:
    """``Patient ID`` -> ``train`` / ``test`` from FLamby's metadata file."""
    try:
        frame = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}", where=str(path), fix=_FIX) from exc
    if not {"Patient ID", "Split"} <= set(frame.columns):
        raise DataError(f"{path} lacks the columns 'Patient ID' and 'Split'", where=str(path), fix=_FIX)
    bad = sorted(set(frame["Split"]) - {"train", "test"})
    if bad:
        raise DataError(f"{path}: unknown Split value(s) {bad}", where=str(path), fix=_FIX)
    return {int(pid): str(split) for pid, split in zip(frame["Patient ID"], frame["Split"], strict=True)}
