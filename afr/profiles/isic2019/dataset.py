"""Reading Fed-ISIC2019: the preprocessed JPEGs per center, FLamby's split, augmentation and normalisation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ...errors import DataError
from .._base import ClientData
from .fetch import CENTERS, CLASSES, IMAGE_DIR, SHORT_SIDE, SPLIT_FILE, resize_shorter_side

__all__ = [
    "CROP_SIZE",
    "augment",
    "center_crop",
    "normalize",
    "load_images",
    "read_split",
    "load_centers",
]

CROP_SIZE = 200
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_FETCH = "afr data fetch isic2019"


def center_crop(images: Tensor, size: int) -> Tensor:
    """The central ``size`` x ``size`` window of (..., H, W) images (FLamby's / albumentations' offsets)."""
    height, width = images.shape[-2:]
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top : top + size, left : left + size]


def normalize(pixels: Tensor) -> Tensor:
    """0..255 pixels (N, 3, H, W) -> float32 ImageNet-normalised (albumentations' Normalize)."""
    mean = torch.tensor(IMAGENET_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - mean) / std


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def augment(images: Tensor, generator: torch.Generator, *, crop: int = CROP_SIZE, p: float = 0.5) -> Tensor:
    """FLamby's training augmentation, approximated in torch (module docstring): uint8 (N, 3, H, W) ->
    float32 (N, 3, crop, crop), normalised. Every random number comes from ``generator``, drawn in a
    fixed order, so the same generator state gives the same batch."""
    n, _, height, width = images.shape
    pixels = images.float()

    def coin() -> Tensor:
        return torch.rand(n, generator=generator) < p

    scale = torch.where(coin(), _uniform(generator, n, 0.93, 1.07), torch.ones(n))
    angle = torch.where(coin(), _uniform(generator, n, -50.0, 50.0), torch.zeros(n)).deg2rad()
    shear_on = coin()
    shear_x = torch.where(shear_on, _uniform(generator, n, -0.1, 0.1), torch.zeros(n)).deg2rad()
    shear_y = torch.where(shear_on, _uniform(generator, n, -0.1, 0.1), torch.zeros(n)).deg2rad()
    flip_on, flip_kind = coin(), torch.randint(0, 3, (n,), generator=generator)  # 0 h, 1 v, 2 both
    flip_x = torch.where(flip_on & (flip_kind != 1), -1.0, 1.0)
    flip_y = torch.where(flip_on & (flip_kind != 0), -1.0, 1.0)
    # RandomCrop takes integer offsets in the rescaled image (size rounded down, as RandomScale's).
    free_x = (torch.floor(width * scale) - crop).clamp(min=0)
    free_y = (torch.floor(height * scale) - crop).clamp(min=0)
    offset_x = torch.floor(torch.rand(n, generator=generator) * (free_x + 1)) - free_x / 2
    offset_y = torch.floor(torch.rand(n, generator=generator) * (free_y + 1)) - free_y / 2

    # Output pixel q (centred crop coordinates) shows the rescaled image at Shear(Flip(Rot(z))) = q + offset;
    # the source pixel is z / scale. Build that inverse map for affine_grid's normalised coordinates.
    cos, sin = angle.cos(), angle.sin()
    rot_inv = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    flip_inv = torch.diag_embed(torch.stack([flip_x, flip_y], -1))
    shear = torch.stack(
        [torch.stack([torch.ones(n), shear_x.tan()], -1), torch.stack([shear_y.tan(), torch.ones(n)], -1)], -2
    )
    inverse = rot_inv @ flip_inv @ torch.linalg.inv(shear) / scale.view(n, 1, 1)
    to_source = torch.diag(torch.tensor([2.0 / width, 2.0 / height]))
    offset = torch.stack([offset_x, offset_y], -1).unsqueeze(-1)
    theta = torch.cat([to_source @ inverse * (crop / 2), to_source @ inverse @ offset], dim=2)
    grid = F.affine_grid(theta, [n, 3, crop, crop], align_corners=False)
    out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    # RandomBrightnessContrast: x * alpha + beta * 255 (brightness by max), clipped.
    adjust = coin()
    alpha = torch.where(adjust, _uniform(generator, n, 0.9, 1.1), torch.ones(n)).view(n, 1, 1, 1)
    beta = torch.where(adjust, _uniform(generator, n, -0.15, 0.15), torch.zeros(n)).view(n, 1, 1, 1)
    out = (out * alpha + beta * 255.0).clamp(0.0, 255.0)

    # CoarseDropout: `holes` 16 x 16 squares set to 0, each fully inside the crop.
    hole = 16
    holes = int(torch.randint(1, 9, (1,), generator=generator))
    drop = coin()
    top = torch.floor(torch.rand(n, holes, generator=generator) * (crop - hole + 1))
    left = torch.floor(torch.rand(n, holes, generator=generator) * (crop - hole + 1))
    pos = torch.arange(crop, dtype=torch.float32)
    rows = (pos >= top[..., None]) & (pos < top[..., None] + hole)
    cols = (pos >= left[..., None]) & (pos < left[..., None] + hole)
    mask = (rows[..., :, None] & cols[..., None, :]).any(dim=1) & drop.view(n, 1, 1)
    out = out.masked_fill(mask.unsqueeze(1), 0.0)
    return normalize(out)


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as raw:
            image = raw.convert("RGB")
    except OSError as exc:
        raise DataError(
            f"cannot read the preprocessed image {path.name}: {exc}",
            where=str(path.parent),
            fix=f"delete {path.parent} and {path.parent.parent / '.afr-prepared.json'}, then run `{_FETCH}`",
        ) from exc
    if min(image.size) != SHORT_SIDE:
        image = resize_shorter_side(image, SHORT_SIDE)
    return center_crop(np.asarray(image).transpose(2, 0, 1), SHORT_SIDE)


def load_images(folder: Path, names: list[str], threads: int = 2) -> Tensor:
    """Decode ``<folder>/<name>.jpg`` for every name into one uint8 tensor (n, 3, 224, 224)."""
    out = np.empty((len(names), 3, SHORT_SIDE, SHORT_SIDE), dtype=np.uint8)
    paths = [folder / f"{name}.jpg" for name in names]
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:  # Pillow decodes without the GIL
        for i, array in enumerate(pool.map(_read_image, paths)):
            out[i] = array  # numpy copies the (H, W, C) -> (C, H, W) view far faster than torch here
    return torch.from_numpy(out)


def read_split(path: Path) -> pd.DataFrame:
    """FLamby's ``train_test_split`` file, checked (``DataError`` naming the fix otherwise)."""
    try:
        split = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path.name}: {exc}", where=str(path), fix=f"run `{_FETCH}`") from exc
    if not {"image", "target", "fold2"} <= set(split.columns):
        raise DataError(
            f"{path.name} lacks image/target/fold2 columns", where=str(path), fix=f"run `{_FETCH}`"
        )
    expected = {f"{fold}_{k}" for fold in ("train", "test") for k in range(len(CENTERS))}
    if not set(split["fold2"]) <= expected or not split["target"].between(0, len(CLASSES) - 1).all():
        raise DataError(
            f"{path.name} has fold2 values outside train_k/test_k (k < 6) or targets outside 0..7",
            where=str(path),
            fix=f"delete it and run `{_FETCH}`",
        )
    return split


def load_centers(
    folder: Path, max_images_per_client: int | None = None
) -> tuple[list[ClientData], list[ClientData]]:
    """Every center's (train, test) from a prepared folder (the first ``max_images_per_client`` rows of
    each when set): uint8 images (n, 3, 224, 224), int64 labels."""
    split = read_split(folder / SPLIT_FILE)
    images = folder / IMAGE_DIR
    missing = [name for name in split["image"] if not (images / f"{name}.jpg").is_file()]
    if missing:
        raise DataError(
            f"{len(missing)} image(s) of {SPLIT_FILE} are not in {IMAGE_DIR} (e.g. {missing[0]}.jpg)",
            where=str(images),
            fix=f"delete {images} and {folder / '.afr-prepared.json'}, then run `{_FETCH}`",
        )
    train, test = [], []
    for k in range(len(CENTERS)):
        for fold, out in (("train", train), ("test", test)):
            rows = split[split["fold2"] == f"{fold}_{k}"]
            if max_images_per_client is not None:
                rows = rows.iloc[:max_images_per_client]
            inputs = load_images(images, rows["image"].tolist())
            out.append(ClientData(inputs, torch.as_tensor(rows["target"].to_numpy(), dtype=torch.int64)))
    return train, test
