"""Fed-IXI (FLamby, IXI-Tiny): T1 brain-MRI brain-mask segmentation, 3 hospitals as centers.

Centers from the subject folder name ``IXI<ID>-<Center>-<n>``: Guys 0, HH 1, IOP 2; train/test from
FLamby's ``metadata_tiny.csv`` (column ``Split``, by patient ID). Preprocessing as FLamby, at load time:
each volume gets a channel axis and is resized to (48, 60, 48) with MONAI ``Resize`` (area mode); the
image is z-scored over the whole volume (MONAI ``NormalizeIntensity``); the label is resized the same
way and one-hot encoded to 2 channels with MONAI ``AsDiscrete`` (which truncates the area-averaged mask,
so a voxel is brain only where the whole source region is). Images are held as float16 and labels as
uint8 to halve memory; :meth:`FedIXI.train_batch` / :meth:`eval_inputs` turn them into float32.

Model: FLamby's 3D U-Net (TorchIO ``unet`` 0.7.7 layout, 246,156 parameters): 3 levels, first width 8,
BatchNorm, PReLU, max-pooling, trilinear upsampling, softmax over 2 channels. Loss: soft Dice loss
averaged over (sample, channel); metric: soft Dice per sample and channel (1 when both are empty),
averaged (see :mod:`afr.profiles._segmentation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from monai.transforms import AsDiscrete, NormalizeIntensity, Resize
from torch import Tensor, nn

from ..data import require
from ..data.prepare.ixi import METADATA, SUBJECT_PATTERN, subject_dirs
from ..errors import DataError
from ._base import ClientData, Profile
from ._segmentation import read_nifti, soft_dice_loss, soft_dice_score

__all__ = ["FedIXI", "UNet3D", "CENTERS", "IMAGE_SHAPE", "preprocess_subject"]

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


class _ConvBlock(nn.Sequential):
    """3³ convolution (bias only without normalisation), optional BatchNorm, PReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm3d(out_channels))
        layers.append(nn.PReLU())
        super().__init__(*layers)


class UNet3D(nn.Module):
    """FLamby's IXI U-Net: encoder blocks (w -> 2w convs, max-pool), a bottom block, decoder blocks
    (trilinear ×2 upsampling, concatenation with the skip, two convs), 1³ head and softmax.

    ``width`` is the first layer's width (8 in FLamby); each level doubles it.
    """

    def __init__(self, in_channels: int = 1, out_classes: int = 2, width: int = 8, levels: int = 3) -> None:
        super().__init__()
        self.encoders = nn.ModuleList()
        channels = in_channels
        for level in range(levels):
            first = width * 2**level
            block = nn.Sequential(_ConvBlock(channels, first, norm=level > 0), _ConvBlock(first, 2 * first))
            self.encoders.append(block)
            channels = 2 * first
        self.pool = nn.MaxPool3d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
        self.decoders = nn.ModuleList()
        for level in reversed(range(levels - 1)):
            skip = 2 * width * 2**level
            self.decoders.append(nn.Sequential(_ConvBlock(3 * skip, skip), _ConvBlock(skip, skip)))
        self.head = nn.Conv3d(2 * width, out_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for encoder in self.encoders[:-1]:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.encoders[-1](x)
        for decoder, skip in zip(self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat((skip, self.upsample(x)), dim=1))
        return torch.softmax(self.head(x), dim=1)


class FedIXI(Profile):
    name = "ixi"
    metric_name = "dice"
    higher_is_better = True
    eval_batch_size = 8
    model_variants: ClassVar = {
        "default": lambda p: UNet3D(width=8),
        "small": lambda p: UNet3D(width=4),
    }

    @property
    def client_names(self) -> list[str]:
        return list(CENTERS)

    def grouping_rule(self) -> str:
        return "one client per hospital (Guys, HH, IOP) from the subject folder name; FLamby's split file"

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        folder = require(self.name, self.data_dir)
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
                out.append(
                    ClientData(torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples]))
                )
        return train, test

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """float16 images and uint8 one-hot masks -> float32 (FLamby trains IXI without augmentation)."""
        return inputs.float(), targets.float()

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        return inputs.float()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return soft_dice_loss(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return soft_dice_score(outputs, targets.float())


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
