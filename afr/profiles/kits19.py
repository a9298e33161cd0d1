"""Fed-KiTS19 (FLamby): kidney and kidney-tumour segmentation in CT, 6 hospital sites as silos.

Silos, splits and preprocessing come from :mod:`afr.data.prepare.kits19` (FLamby's silo rule on
``anony_sites.csv``: sites 7, 13, 14, 55, 57, 67 with 9/3, 11/3, 9/3, 9/3, 12/4, 24/6 train/test cases;
our simplified nnU-Net-style CT preprocessing into one npz per case).

A sample is a case: ``ClientData.inputs`` holds case numbers, ``targets`` the case's fixed evaluation
mask patch (uint8, (1, *patch_size)). Training patches are drawn in :meth:`FedKiTS19.train_batch` as
nnU-Net / FLamby do: within a batch, samples alternate between a uniformly random patch and one centred
on a random voxel of a random foreground class present in the case (kidney or tumour), padded with 0
where it leaves the volume; then, with ``augment: true``, nnU-Net's default 3D augmentation minus its
elastic deformation: rotation (±15° per axis, p 0.2), scaling (0.85–1.25, p 0.2), gamma (0.7–1.5,
statistics retained, p 0.3) and mirroring along each axis (p 0.5). Evaluation uses one fixed patch per
case, centred on the bounding box of its kidney and tumour voxels (FLamby draws its test patches with
the same random / foreground alternation as training, without augmentation).

Model: nnU-Net v1's 3D ``Generic_UNet`` as MONAI ``DynUNet`` — six stages of widths 32/64/128/256/320/320
(``unet_filters``), two 3³ conv + InstanceNorm (affine, eps 1e-5) + LeakyReLU(0.01) per stage,
strided-conv downsampling ([2,2,2]×4, then [1,2,2]), transposed-conv upsampling, He init (a = 0.01), no
deep supervision, 3 output classes (logits). ``DynUNet`` has 30,779,843 parameters against
``Generic_UNet``'s 30,785,984: its convs carry no bias (a per-channel constant that InstanceNorm removes
anyway, 3,840 parameters) and it builds no unused deep-supervision heads (2,304), and has a bias on
the output conv (+3). Variant ``small``: widths 8/16/32/64/80/80 (1.9 M parameters) for CPUs.
Loss: Dice (batch, no background) + cross-entropy; metric: mean of the kidney+tumour and tumour Dice
per batch of 2 cases, averaged over batches (:mod:`afr.profiles._segmentation`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from monai.networks.nets import DynUNet
from monai.transforms import Affine
from torch import Tensor, nn

from ..data import require
from ..data.prepare.kits19 import PREPARED_DIR, SILOS, read_manifest
from ..errors import ConfigError, DataError
from ._base import ClientData, Profile
from ._segmentation import centred_start, crop_or_pad, dice_ce_loss, kits_batched_dice

__all__ = ["FedKiTS19", "nnunet_3d", "FLAMBY_FILTERS", "SMALL_FILTERS", "FLAMBY_PATCH"]

FLAMBY_FILTERS = (32, 64, 128, 256, 320, 320)
SMALL_FILTERS = (8, 16, 32, 64, 80, 80)
FLAMBY_PATCH = (64, 192, 192)
_STRIDES: tuple[Sequence[int], ...] = (1, 2, 2, 2, 2, (1, 2, 2))
_DOWNSAMPLING = (16, 32, 32)  # product of the strides per axis: patches must be multiples of it
_FIX = "run `afr data fetch kits19` (downloads what is missing, then preprocesses)"
_EVAL_GROUP = 2  # FLamby's KiTS19 test batch size: the metric is averaged over batches of 2 cases


def nnunet_3d(filters: Sequence[int] = FLAMBY_FILTERS, num_classes: int = 3) -> nn.Module:
    """nnU-Net v1's 3D full-resolution U-Net for KiTS19 (FLamby's ``Baseline``) as MONAI ``DynUNet``."""
    if len(filters) != len(_STRIDES):
        raise ConfigError(
            f"unet_filters needs {len(_STRIDES)} widths (one per stage), got {list(filters)}",
            where="profile.unet_filters",
            fix=f"e.g. {list(FLAMBY_FILTERS)}",
        )
    return DynUNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=num_classes,
        kernel_size=[3] * len(_STRIDES),
        strides=list(_STRIDES),
        upsample_kernel_size=list(_STRIDES[1:]),
        filters=[int(f) for f in filters],
        norm_name=("INSTANCE", {"affine": True, "eps": 1e-5}),
        act_name=("LEAKYRELU", {"negative_slope": 0.01, "inplace": True}),
        deep_supervision=False,
        res_block=False,
        trans_bias=False,
    )


def _patch_size(value: Any) -> tuple[int, int, int]:
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


class FedKiTS19(Profile):
    name = "kits19"
    metric_name = "dice"
    higher_is_better = True
    eval_batch_size = 2
    model_variants: ClassVar = {
        "default": lambda p: nnunet_3d(p.cfg.get("unet_filters", FLAMBY_FILTERS)),
        "small": lambda p: nnunet_3d(SMALL_FILTERS),
    }

    def __init__(self, cfg: Mapping[str, Any], data_dir: str | Path | None = None) -> None:
        super().__init__(cfg, data_dir)
        self.patch_size = _patch_size(self.cfg.get("patch_size", FLAMBY_PATCH))
        self.augment = bool(self.cfg.get("augment", True))
        cache = self.cfg.get("volume_cache", 8)
        if isinstance(cache, bool) or not isinstance(cache, int) or cache < 1:
            raise ConfigError(
                f"volume_cache must be a positive integer, got {cache!r}", where="profile.volume_cache"
            )
        self.volume_cache = cache
        self._volumes: OrderedDict[int, tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = OrderedDict()
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
        folder = require(self.name, self.data_dir)
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
        self._folder = folder
        train, test = [], []
        for silo in manifest["silos"]:
            for key, out in (("train", train), ("test", test)):
                cases = [int(c) for c in silo[key]]
                masks = [self._eval_patch(case) for case in cases]
                out.append(
                    ClientData(torch.tensor(cases, dtype=torch.long), torch.from_numpy(np.stack(masks)))
                )
        return train, test

    def _volume(self, case: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(image, mask, [kidney, tumour voxel locations]) of a prepared case, from a small LRU cache."""
        if case in self._volumes:
            self._volumes.move_to_end(case)
            return self._volumes[case]
        if self._folder is None:
            self._folder = require(self.name, self.data_dir)
        path = self._folder / PREPARED_DIR / f"case_{case:05d}.npz"
        try:
            with np.load(path) as npz:
                entry = (npz["image"], npz["seg"], [npz["loc1"], npz["loc2"]])
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(
                f"cannot read the prepared case {path}: {exc}", where=str(path), fix=_FIX
            ) from exc
        self._volumes[case] = entry
        while len(self._volumes) > self.volume_cache:
            self._volumes.popitem(last=False)
        return entry

    def _eval_patch(self, case: int) -> np.ndarray:
        """Store the case's fixed evaluation image patch; return its mask patch (uint8, (1, *patch))."""
        image, seg, _ = self._volume(case)
        foreground = np.argwhere(seg > 0)
        if len(foreground):
            centre = (foreground.min(axis=0) + foreground.max(axis=0)) // 2
        else:
            centre = np.asarray(seg.shape) // 2
        start = centred_start(centre, self.patch_size)
        self._eval_images[case] = crop_or_pad(image, start, self.patch_size, 0.0)
        return crop_or_pad(seg, start, self.patch_size, 0)[None]

    def _patch_start(
        self,
        shape: Sequence[int],
        locations: list[np.ndarray],
        force_foreground: bool,
        generator: torch.Generator,
    ) -> list[int]:
        """nnU-Net's patch corner: uniform in the volume (centred padding where it is smaller than the
        patch), or, when forced, centred on a random voxel of a random foreground class present."""
        pad = [max(p - s, 0) for p, s in zip(self.patch_size, shape, strict=True)]
        low = [-n // 2 for n in pad]
        high = [s + n // 2 + n % 2 - p for s, n, p in zip(shape, pad, self.patch_size, strict=True)]
        present = [loc for loc in locations if len(loc)]
        if force_foreground and present:
            loc = present[int(torch.randint(len(present), (), generator=generator))]
            voxel = loc[int(torch.randint(len(loc), (), generator=generator))]
            return [max(lo, int(v) - p // 2) for lo, v, p in zip(low, voxel, self.patch_size, strict=True)]
        return [
            int(torch.randint(lo, hi + 1, (), generator=generator)) for lo, hi in zip(low, high, strict=True)
        ]

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Case numbers -> (image patches (B, 1, *patch) float32, label patches (B, 1, *patch) int64)."""
        images, labels = [], []
        for i, case in enumerate(inputs.tolist()):
            image, seg, locations = self._volume(int(case))
            start = self._patch_start(seg.shape, locations, i % 2 == 1, generator)
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
        return kits_batched_dice(outputs, targets, _EVAL_GROUP)
