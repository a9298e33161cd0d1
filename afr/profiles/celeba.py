"""LEAF CelebA: face images (Liu et al., 2015) grouped by celebrity, "is the person smiling?".

Data (``afr data fetch celeba``, see :mod:`afr.data.prepare.celeba`): LEAF JSON with ``x`` = image
file name and ``y = (Smiling + 1) / 2``, plus the official images, either the folder
``img_align_celeba/`` or the untouched ``img_align_celeba.zip`` (read in place, no extraction).
Users (celebrities with at least 5 images) are grouped into clients by
:class:`~afr.profiles._leaf.Grouping` (YAML ``grouping``).

Preprocessing (LEAF's ``celeba/cnn.py``): each image is opened with Pillow, resized to 84 x 84
(the aspect ratio is not kept) and converted to RGB; pixel values stay raw 0-255. They are stored
as uint8 ``[n, 3, 84, 84]`` and become float32 only per batch (:meth:`Celeba.train_batch`,
:meth:`Celeba.eval_inputs`). The resampling filter is Pillow's bicubic (Pillow's default for
``resize`` since 7.0; LEAF ran with whatever its Pillow defaulted to).

Model (LEAF's reference CNN, 31,202 parameters): 4 x [conv 3x3, 32 channels, 'same' -> BatchNorm
-> max-pool 2x2 with TF's 'same' padding (``ceil_mode``: 84 -> 42 -> 21 -> 11 -> 6) -> ReLU] ->
flatten 6*6*32 = 1152 -> dense 2. LEAF's batch normalisation always runs in training mode (batch
statistics, also at test time); ``track_running_stats=False`` does the same here and leaves the model
without buffers. LEAF's learning rate is 0.1.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from ..data import profile_dir
from ..errors import DataError
from ._base import ClientData
from ._leaf import LeafProfile

__all__ = ["Celeba", "CelebaCNN", "ImageSource", "IMAGE_SIZE", "load_image"]

IMAGE_SIZE = 84
IMAGES_DIR = "img_align_celeba"
IMAGES_ZIP = "img_align_celeba.zip"


class CelebaCNN(nn.Module):
    """LEAF's CelebA CNN on raw 0-255 RGB images ``[n, 3, 84, 84]``."""

    def __init__(self, num_classes: int = 2, channels: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for _ in range(4):
            layers += [
                nn.Conv2d(in_channels, channels, 3, padding=1),
                nn.BatchNorm2d(channels, track_running_stats=False),
                nn.MaxPool2d(2, 2, ceil_mode=True),
                nn.ReLU(),
            ]
            in_channels = channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * 6 * 6, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(self.features(images).flatten(1))


def load_image(data: bytes | Path, name: str) -> np.ndarray:
    """One image file -> uint8 ``[3, 84, 84]``, LEAF's way (resize to 84 x 84, then RGB)."""
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            rgb = img.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC).convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(
            f"cannot read image {name}: {exc}",
            fix="the image file is damaged: re-download img_align_celeba.zip (`afr data fetch celeba`)",
        ) from exc
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


class ImageSource:
    """The CelebA images of a data folder: the extracted folder if present, else the official zip."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}

    @staticmethod
    def available(folder: Path) -> bool:
        return (folder / IMAGES_DIR).is_dir() or (folder / IMAGES_ZIP).is_file()

    @contextmanager
    def opened(self) -> Iterator[ImageSource]:
        """Keep the zip (and its name index) open while many images are read."""
        if not (self.folder / IMAGES_DIR).is_dir() and (self.folder / IMAGES_ZIP).is_file():
            try:
                self._zip = zipfile.ZipFile(self.folder / IMAGES_ZIP)
            except (OSError, zipfile.BadZipFile) as exc:
                raise DataError(
                    f"cannot open {IMAGES_ZIP}: {exc}",
                    where=str(self.folder / IMAGES_ZIP),
                    fix="delete it and run `afr data fetch celeba` again",
                ) from exc
            self._members = {
                n.rsplit("/", 1)[-1]: n for n in self._zip.namelist() if n.lower().endswith((".jpg", ".png"))
            }
        try:
            yield self
        finally:
            if self._zip is not None:
                self._zip.close()
            self._zip, self._members = None, {}

    def read(self, name: str) -> np.ndarray:
        """One image as uint8 ``[3, 84, 84]`` (call inside :meth:`opened`)."""
        if self._zip is not None:
            member = self._members.get(name)
            if member is None:
                raise DataError(
                    f"image {name} is not in {IMAGES_ZIP}",
                    where=str(self.folder / IMAGES_ZIP),
                    fix="use the official img_align_celeba.zip with the LEAF JSON made from its lists",
                )
            return load_image(self._zip.read(member), name)
        path = self.folder / IMAGES_DIR / name
        if not path.is_file():
            raise DataError(
                f"image {name} is missing",
                where=str(self.folder / IMAGES_DIR),
                fix="use the official img_align_celeba images with the LEAF JSON made from its lists",
            )
        return load_image(path, name)


class Celeba(LeafProfile):
    """LEAF CelebA as grouped clients; accuracy on smiling / not smiling."""

    name = "celeba"
    metric_name = "accuracy"
    higher_is_better = True
    model_variants: ClassVar = {"default": lambda p: CelebaCNN()}
    eval_batch_size: ClassVar[int] = 128  # BatchNorm on batch statistics: activations of a chunk fit in RAM

    _source: ImageSource | None = None

    def encode(self, xs: list, ys: list) -> ClientData:
        """Image names -> uint8 images ``[n, 3, 84, 84]``; labels 0/1 -> int64."""
        if self._source is None:
            raise RuntimeError("Celeba.encode runs inside load_splits (the image source must be open)")
        if not all(isinstance(x, str) for x in xs):
            raise DataError(
                "x must be image file names", fix="re-create the data with `afr data fetch celeba`"
            )
        if any(isinstance(y, bool) or y not in (0, 1) for y in ys):
            raise DataError(
                f"labels must be 0 or 1 (LEAF's (Smiling + 1) / 2), got {sorted({repr(y) for y in ys})[:4]}",
                fix="re-create the data with `afr data fetch celeba`",
            )
        images = np.empty((len(xs), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        for i, name in enumerate(xs):
            images[i] = self._source.read(name)
        return ClientData(torch.from_numpy(images), torch.tensor([int(y) for y in ys], dtype=torch.long))

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        folder = profile_dir(self.name, self.data_dir)
        if not ImageSource.available(folder) and (folder / "train").is_dir():
            raise DataError(
                f"the CelebA images are missing: neither {IMAGES_DIR}/ nor {IMAGES_ZIP}",
                where=str(folder),
                fix="put the official img_align_celeba.zip (or its extracted folder) there, "
                "or run `afr data fetch celeba`",
            )
        self._source = ImageSource(folder)
        try:
            with self._source.opened():
                return super().load_splits()
        finally:
            self._source = None

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return inputs.float(), targets

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        return inputs.float()
