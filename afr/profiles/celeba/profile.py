"""The CelebA profile: LEAF's celebrities grouped into clients (see the package docstring)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from ...errors import DataError
from .._base import ClientData
from .._leaf import LeafProfile
from .dataset import ImageSource, encode_faces
from .fetch import IMAGES_DIR, IMAGES_ZIP, SOURCE
from .metric import accuracy, cross_entropy
from .model import CelebaCNN

__all__ = ["Celeba"]


class Celeba(LeafProfile):
    """LEAF CelebA as grouped clients; accuracy on smiling / not smiling."""

    name = "celeba"
    metric_name = "accuracy"
    higher_is_better = True
    source = SOURCE
    model_variants: ClassVar = {"default": lambda p: CelebaCNN()}
    eval_batch_size: ClassVar[int] = 128  # BatchNorm on batch statistics: activations of a chunk fit in RAM

    _images: ImageSource | None = None

    def encode(self, xs: list, ys: list) -> ClientData:
        """Image names -> uint8 images ``[n, 3, 84, 84]``; labels 0/1 -> int64."""
        if self._images is None:
            raise RuntimeError("Celeba.encode runs inside load_splits (the image source must be open)")
        return encode_faces(xs, ys, self._images)

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        folder = self.data_path
        if not ImageSource.available(folder) and (folder / "train").is_dir():
            raise DataError(
                f"the CelebA images are missing: neither {IMAGES_DIR}/ nor {IMAGES_ZIP}",
                where=str(folder),
                fix="put the official img_align_celeba.zip (or its extracted folder) there, "
                "or run `afr data fetch celeba`",
            )
        self._images = ImageSource(folder)
        try:
            with self._images.opened():
                return super().load_splits()
        finally:
            self._images = None

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return inputs.float(), targets

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        return inputs.float()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return cross_entropy(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return accuracy(outputs, targets)
