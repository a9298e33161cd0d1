"""Reading Fed-KiTS19: the prepared silos and cases, nnU-Net's patch sampling and 3D augmentation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Affine
from torch import Tensor

from ...errors import ConfigError, DataError
from .._segmentation import centred_start, crop_or_pad
from .fetch import PREPARED_DIR, SILOS, read_manifest

__all__ = [
    "FLAMBY_PATCH",
    "check_patch_size",
    "read_silos",
    "read_case",
    "eval_patch",
    "patch_start",
    "augment",
]

FLAMBY_PATCH = (64, 192, 192)
_DOWNSAMPLING = (16, 32, 32)  # product of the model's strides per axis: patches must be multiples of it
_FIX = "run `afr data fetch kits19` (downloads what is missing, then preprocesses)"

Case = tuple[np.ndarray, np.ndarray, list[np.ndarray]]
"""A prepared case: image, mask and the [kidney, tumour] voxel locations."""


def check_patch_size(value: Any) -> tuple[int, int, int]:
    """A patch size from the config: 3 positive multiples of the U-Net's downsampling (``ConfigError``)."""
    try:
        patch = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        patch = ()
    if (
        len(patch) != 3
        or any(p < 1 for p in patch)
        or any(p % d for p, d in zip(patch, _DOWNSAMPLING, strict=True))
    ):
        raise ConfigError(
            f"patch_size must be 3 positive integers, multiples of {list(_DOWNSAMPLING)}, got {value!r}",
            where="afr/conf/profile/kits19.yaml: patch_size",
            fix=f"e.g. {list(FLAMBY_PATCH)} (FLamby) or [32, 32, 32]",
        )
    if math.prod(p // d for p, d in zip(patch, _DOWNSAMPLING, strict=True)) < 2:
        raise ConfigError(
            f"patch_size {list(patch)} leaves a 1×1×1 bottleneck, which InstanceNorm cannot normalise",
            where="afr/conf/profile/kits19.yaml: patch_size",
            fix="make one axis twice its minimum, e.g. [32, 32, 32]",
        )
    return patch  # type: ignore[return-value]


def read_silos(folder: Path) -> list[dict[str, Any]]:
    """The prepared silos of the manifest (site, train and test cases), checked against FLamby's."""
    manifest = read_manifest(folder)
    if manifest is None:
        raise DataError(f"{folder} has no readable kits19 manifest", where=str(folder), fix=_FIX)
    sites = [silo.get("site") for silo in manifest["silos"]]
    if sites != [site for site, _ in SILOS]:
        raise DataError(
            f"the prepared silos are sites {sites}, expected {[s for s, _ in SILOS]}",
            where=str(folder),
            fix=f"delete {folder / PREPARED_DIR} and the manifest, then {_FIX}",
        )
    return manifest["silos"]


def read_case(folder: Path, case: int) -> Case:
    """One prepared case (``DataError`` naming the fix if unreadable)."""
    path = folder / PREPARED_DIR / f"case_{case:05d}.npz"
    try:
        with np.load(path) as npz:
            return npz["image"], npz["seg"], [npz["loc1"], npz["loc2"]]
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(f"cannot read the prepared case {path}: {exc}", where=str(path), fix=_FIX) from exc


def eval_patch(image: np.ndarray, seg: np.ndarray, size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """A case's fixed evaluation patch: (image patch, mask patch (1, *size) uint8), centred on the
    bounding box of its kidney and tumour voxels (on the volume's centre when it has none)."""
    foreground = np.argwhere(seg > 0)
    if len(foreground):
        centre = (foreground.min(axis=0) + foreground.max(axis=0)) // 2
    else:
        centre = np.asarray(seg.shape) // 2
    start = centred_start(centre, size)
    return crop_or_pad(image, start, size, 0.0), crop_or_pad(seg, start, size, 0)[None]


def patch_start(
    shape: Sequence[int],
    size: Sequence[int],
    locations: list[np.ndarray],
    force_foreground: bool,
    generator: torch.Generator,
) -> list[int]:
    """nnU-Net's patch corner: uniform in the volume (centred padding where it is smaller than the
    patch), or, when forced, centred on a random voxel of a random foreground class present."""
    pad = [max(p - s, 0) for p, s in zip(size, shape, strict=True)]
    low = [-n // 2 for n in pad]
    high = [s + n // 2 + n % 2 - p for s, n, p in zip(shape, pad, size, strict=True)]
    present = [loc for loc in locations if len(loc)]
    if force_foreground and present:
        loc = present[int(torch.randint(len(present), (), generator=generator))]
        voxel = loc[int(torch.randint(len(loc), (), generator=generator))]
        return [max(lo, int(v) - p // 2) for lo, v, p in zip(low, voxel, size, strict=True)]
    return [int(torch.randint(lo, hi + 1, (), generator=generator)) for lo, hi in zip(low, high, strict=True)]


def _plain(tensor: Any) -> Tensor:
    return tensor.as_tensor() if hasattr(tensor, "as_tensor") else torch.as_tensor(tensor)


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def augment(image: Tensor, labels: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """nnU-Net's default 3D augmentation without elastic deformation, on one (D, H, W) patch."""
    rotate, scale = _uniform(generator) < 0.2, _uniform(generator) < 0.2
    if rotate or scale:
        angles = [math.radians(_uniform(generator, -15, 15)) if rotate else 0.0 for _ in range(3)]
        factor = _uniform(generator, 0.85, 1.25) if scale else 1.0
        params = {
            "rotate_params": angles,
            "scale_params": [factor] * 3,
            "padding_mode": "zeros",
            "image_only": True,
        }
        image = _plain(Affine(mode="bilinear", **params)(image[None]))[0]
        labels = _plain(Affine(mode="nearest", **params)(labels[None].float()))[0].round().long()
    if _uniform(generator) < 0.3:
        gamma = _uniform(generator, 0.7, 1.0) if _uniform(generator) < 0.5 else _uniform(generator, 1.0, 1.5)
        mean, std = image.mean(), image.std()
        low, span = image.min(), image.max() - image.min()
        image = ((image - low) / (span + 1e-7)) ** gamma * span + low
        image = (image - image.mean()) / (image.std() + 1e-8) * std + mean
    for axis in range(3):
        if _uniform(generator) < 0.5:
            image, labels = image.flip(axis), labels.flip(axis)
    return image, labels
