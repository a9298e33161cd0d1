"""The Fed-KiTS19 profile: kidney and tumour segmentation in CT, 6 sites (see the package docstring)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from ...errors import ConfigError
from .._base import ClientData, Profile
from .._segmentation import crop_or_pad
from .dataset import (
    FLAMBY_PATCH,
    Case,
    augment,
    check_patch_size,
    eval_patch,
    patch_start,
    read_case,
    read_silos,
)
from .fetch import SILOS, SOURCE
from .metric import batched_dice, dice_ce_loss
from .model import FLAMBY_FILTERS, SMALL_FILTERS, nnunet_3d

__all__ = ["FedKiTS19"]


class FedKiTS19(Profile):
    name = "kits19"
    metric_name = "dice"
    higher_is_better = True
    source = SOURCE
    eval_batch_size = 2
    model_variants: ClassVar = {
        "default": lambda p: nnunet_3d(p.cfg.get("unet_filters", FLAMBY_FILTERS)),
        "small": lambda p: nnunet_3d(SMALL_FILTERS),
    }

    def __init__(self, cfg: Mapping[str, Any], data_dir: str | Path | None = None) -> None:
        super().__init__(cfg, data_dir)
        self.patch_size = check_patch_size(self.cfg.get("patch_size", FLAMBY_PATCH))
        self.augment = bool(self.cfg.get("augment", True))
        cache = self.cfg.get("volume_cache", 8)
        if isinstance(cache, bool) or not isinstance(cache, int) or cache < 1:
            raise ConfigError(
                f"volume_cache must be a positive integer, got {cache!r}", where="profile.volume_cache"
            )
        self.volume_cache = cache
        self._volumes: OrderedDict[int, Case] = OrderedDict()
        self._eval_images: dict[int, np.ndarray] = {}
        self._folder: Path | None = None

    @property
    def client_names(self) -> list[str]:
        return [f"site{site}" for site, _ in SILOS]

    def grouping_rule(self) -> str:
        return (
            "FLamby's silos: sites with >= 10 of the first 210 KiTS19 cases (anony_sites.csv), ordered by "
            "site id; first 80 % of each site's cases (file order) train"
        )

    # --- data ------------------------------------------------------------------------------------

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        folder = self.require_data()
        silos = read_silos(folder)
        self._folder = folder
        train, test = [], []
        for silo in silos:
            for key, out in (("train", train), ("test", test)):
                cases = [int(c) for c in silo[key]]
                masks = [self._eval_patch(case) for case in cases]
                out.append(
                    ClientData(torch.tensor(cases, dtype=torch.long), torch.from_numpy(np.stack(masks)))
                )
        return train, test

    def _volume(self, case: int) -> Case:
        """(image, mask, [kidney, tumour voxel locations]) of a prepared case, from a small LRU cache."""
        if case in self._volumes:
            self._volumes.move_to_end(case)
            return self._volumes[case]
        if self._folder is None:
            self._folder = self.require_data()
        entry = read_case(self._folder, case)
        self._volumes[case] = entry
        while len(self._volumes) > self.volume_cache:
            self._volumes.popitem(last=False)
        return entry

    def _eval_patch(self, case: int) -> np.ndarray:
        """Store the case's fixed evaluation image patch; return its mask patch (uint8, (1, *patch))."""
        image, seg, _ = self._volume(case)
        self._eval_images[case], mask = eval_patch(image, seg, self.patch_size)
        return mask

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Case numbers -> (image patches (B, 1, *patch) float32, label patches (B, 1, *patch) int64)."""
        images, labels = [], []
        for i, case in enumerate(inputs.tolist()):
            image, seg, locations = self._volume(int(case))
            start = patch_start(seg.shape, self.patch_size, locations, i % 2 == 1, generator)
            x = torch.from_numpy(crop_or_pad(image, start, self.patch_size, 0.0).astype(np.float32))
            y = torch.from_numpy(crop_or_pad(seg, start, self.patch_size, 0).astype(np.int64))
            if self.augment:
                x, y = augment(x, y, generator)
            images.append(x[None])
            labels.append(y[None])
        return torch.stack(images), torch.stack(labels)

    def forget_test(self) -> None:
        """Also drop the test cases' evaluation image patches."""
        super().forget_test()
        keep = {int(c) for client in self.data("train") for c in client.inputs.tolist()}
        self._eval_images = {c: v for c, v in self._eval_images.items() if c in keep}

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        """Case numbers -> their fixed evaluation image patches (B, 1, *patch) float32."""
        missing = [c for c in inputs.tolist() if c not in self._eval_images]
        for case in missing:
            self._eval_patch(int(case))
        return torch.stack(
            [torch.from_numpy(self._eval_images[c].astype(np.float32))[None] for c in inputs.tolist()]
        )

    # --- loss and metric -------------------------------------------------------------------------

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return dice_ce_loss(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return batched_dice(outputs, targets)
