"""Fed-ISIC2019 (FLamby): 8-class dermoscopy classification, 6 centers.

Data: ``afr data fetch isic2019`` downloads the official ISIC 2019 training files and preprocesses them
(see :mod:`afr.data.prepare.isic2019`: center from ``lesion_id`` + HAM10000 ``dataset``, shorter side
224 px, Shades-of-Gray colour constancy). Train/test per center come from FLamby's ``train_test_split``
file (``fold2`` = ``train_k`` / ``test_k``: 9930/2483, 3163/791, 2691/672, 1807/452, 655/164, 351/88).

In memory every image is uint8 (3, 224, 224): the preprocessed JPEG (shorter side 224) decoded with
Pillow and centre-cropped along its longer side to 224 x 224 (an image whose shorter side is not 224,
e.g. prepared by hand, is first resized to 224 the same way). Labels are int64 0..7 = MEL, NV, BCC,
AK, BKL, DF, VASC, SCC.

Training batches (:meth:`Isic2019.train_batch`) approximate FLamby's albumentations pipeline with
torch ops and the client's generator, each step with probability 0.5 as albumentations' defaults:
RandomScale(0.07), Rotate(±50°), RandomBrightnessContrast(0.15, 0.1), Flip (horizontal, vertical or
both), Affine(shear ±0.1°), RandomCrop 200, CoarseDropout(16 x 16 holes, filled with 0), then ImageNet
normalisation. What differs: scale, rotation, flip, shear and crop are one bilinear ``grid_sample``
(albumentations resamples at each step); borders are reflected by ``grid_sample`` (OpenCV's
BORDER_REFLECT_101 in albumentations); the crop is taken from the stored 224 x 224 centre square, not
from the whole rectangular image; brightness/contrast is applied after the geometry; FLamby draws the
number of dropout holes (1..8) once per dataset object, we draw it per mini-batch. Evaluation
(:meth:`Isic2019.eval_inputs`) is FLamby's: centre crop 200 + ImageNet normalisation.

Model: EfficientNet-B0 (``efficientnet_pytorch`` layout, 4,017,796 parameters with the Linear(1280 -> 8)
head); ImageNet weights when ``pretrained: true`` (see the YAML). Loss: FLamby's weighted focal loss
(gamma 2, alpha = N_train / n_class). Metric: balanced accuracy of the argmax (sklearn).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import balanced_accuracy_score
from torch import Tensor, nn

from ..data import profile_dir, require
from ..data.prepare.isic2019 import CENTERS, CLASSES, IMAGE_DIR, SHORT_SIDE, SPLIT_FILE, resize_shorter_side
from ..data.prepare.isic2019 import WEIGHTS as PRETRAINED_WEIGHTS
from ..errors import ConfigError, DataError
from ._base import ClientData, Profile
from ._efficientnet import EfficientNet, efficientnet_b0, load_pretrained

__all__ = [
    "Isic2019",
    "CLASS_WEIGHTS",
    "CROP_SIZE",
    "focal_loss",
    "balanced_accuracy",
    "augment",
    "center_crop",
    "normalize",
    "load_images",
]

#: FLamby's focal-loss alpha: N_train / n_c over the 8 classes.
CLASS_WEIGHTS = (5.5813, 2.0472, 7.0204, 26.1194, 9.5369, 101.0707, 92.5224, 38.3443)
CROP_SIZE = 200
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MODELS = ("efficientnet_b0", "efficientnet_tiny")
_FETCH = "afr data fetch isic2019"


def focal_loss(logits: Tensor, targets: Tensor, alpha: Tensor, gamma: float = 2.0) -> Tensor:
    """Weighted focal loss: mean over samples of ``-alpha[y] * (1 - p_y)^gamma * log p_y``."""
    log_p = F.log_softmax(logits, dim=1).gather(1, targets.view(-1, 1)).view(-1)
    weight = alpha.to(logits.device, logits.dtype)[targets.view(-1)]
    return (-weight * (1.0 - log_p.exp()) ** gamma * log_p).mean()


def balanced_accuracy(logits: Tensor, targets: Tensor) -> float:
    """Mean per-class recall of the argmax over the classes present in ``targets`` (NaN if empty)."""
    if len(targets) == 0:
        return math.nan
    predicted = logits.argmax(dim=1).cpu().numpy()
    with warnings.catch_warnings():  # predicted classes absent from the truth are ignored, as intended
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(targets.cpu().numpy(), predicted))


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


class Isic2019(Profile):
    """Fed-ISIC2019 with FLamby's split, preprocessing, model, loss and metric."""

    name = "isic2019"
    metric_name = "balanced_accuracy"
    higher_is_better = True
    model_variants: ClassVar = {
        "default": lambda p: p.build_model(p.default_model),
        "efficientnet_b0": lambda p: p._efficientnet_b0(),
        "efficientnet_tiny": lambda p: EfficientNet(len(CLASSES), width=0.25, depth=0.25),
    }

    def __init__(self, cfg: Mapping[str, Any], data_dir: str | Path | None = None) -> None:
        super().__init__(cfg, data_dir)
        self.default_model = str(self.cfg.get("default_model", "efficientnet_b0"))
        if self.default_model not in MODELS:
            raise ConfigError(
                f"default_model must be one of {', '.join(MODELS)}, got {self.default_model!r}",
                where=f"afr/conf/profile/{self.name}.yaml: default_model",
            )
        pretrained = self.cfg.get("pretrained", False)
        if not isinstance(pretrained, bool):
            raise ConfigError(
                f"pretrained must be true or false, got {pretrained!r}",
                where=f"afr/conf/profile/{self.name}.yaml: pretrained",
            )
        self.pretrained = pretrained
        cap = self.cfg.get("max_images_per_client")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ConfigError(
                f"max_images_per_client must be a positive integer or null, got {cap!r}",
                where=f"afr/conf/profile/{self.name}.yaml: max_images_per_client",
            )
        self.max_images_per_client: int | None = cap
        self.alpha = torch.tensor(CLASS_WEIGHTS)

    @property
    def client_names(self) -> list[str]:
        return list(CENTERS)

    # --- data --------------------------------------------------------------------------------------

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        folder = require(self.name, self.data_dir)
        split = self._read_split(folder / SPLIT_FILE)
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
                if self.max_images_per_client is not None:
                    rows = rows.iloc[: self.max_images_per_client]
                inputs = load_images(images, rows["image"].tolist())
                out.append(ClientData(inputs, torch.as_tensor(rows["target"].to_numpy(), dtype=torch.int64)))
        return train, test

    def _read_split(self, path: Path) -> pd.DataFrame:
        try:
            split = pd.read_csv(path)
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cannot read {path.name}: {exc}", where=str(path), fix=f"run `{_FETCH}`"
            ) from exc
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

    def stratify_labels(self, data: ClientData) -> np.ndarray:
        return data.targets.numpy()

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return augment(inputs, generator), targets

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        return normalize(center_crop(inputs, CROP_SIZE))

    # --- model, loss, metric -----------------------------------------------------------------------

    def _efficientnet_b0(self) -> nn.Module:
        model = efficientnet_b0(len(CLASSES))
        if not self.pretrained:
            return model
        path = profile_dir(self.name, self.data_dir) / PRETRAINED_WEIGHTS.filename
        hint = "python -m afr.data.prepare.isic2019 weights" + (
            f" --data-dir {self.data_dir}" if self.data_dir else ""
        )
        if not path.is_file():
            raise DataError(
                "pretrained: true but the EfficientNet-B0 ImageNet weights are not downloaded",
                where=str(path),
                fix=f"run `{hint}`, or set profile.pretrained=false (random initialisation)",
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            load_pretrained(model, state)
        except (OSError, RuntimeError, ValueError, AttributeError) as exc:
            raise DataError(
                f"cannot use the ImageNet weights {path.name}: {exc}",
                where=str(path),
                fix=f"delete the file and run `{hint}` again",
            ) from exc
        return model

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return focal_loss(outputs, targets, self.alpha)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return balanced_accuracy(outputs, targets)
