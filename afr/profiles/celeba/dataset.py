"""CelebA's samples: LEAF's image preprocessing (84 x 84 RGB, raw 0-255), read from the folder or the zip."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ...errors import DataError
from .._base import ClientData
from .fetch import IMAGES_DIR, IMAGES_ZIP

__all__ = ["IMAGE_SIZE", "ImageSource", "load_image", "encode_faces"]

IMAGE_SIZE = 84


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


def encode_faces(xs: list, ys: list, images_source: ImageSource) -> ClientData:
    """Image names -> uint8 images ``[n, 3, 84, 84]`` (read from an opened source); labels 0/1 -> int64."""
    if not all(isinstance(x, str) for x in xs):
        raise DataError("x must be image file names", fix="re-create the data with `afr data fetch celeba`")
    if any(isinstance(y, bool) or y not in (0, 1) for y in ys):
        raise DataError(
            f"labels must be 0 or 1 (LEAF's (Smiling + 1) / 2), got {sorted({repr(y) for y in ys})[:4]}",
            fix="re-create the data with `afr data fetch celeba`",
        )
    images = np.empty((len(xs), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    for i, name in enumerate(xs):
        images[i] = images_source.read(name)
    return ClientData(torch.from_numpy(images), torch.tensor([int(y) for y in ys], dtype=torch.long))
