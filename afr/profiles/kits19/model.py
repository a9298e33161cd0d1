"""Fed-KiTS19's model: nnU-Net v1's 3D full-resolution U-Net as MONAI ``DynUNet``."""

from __future__ import annotations

from collections.abc import Sequence

from monai.networks.nets import DynUNet
from torch import nn

from ...errors import ConfigError

__all__ = ["nnunet_3d", "FLAMBY_FILTERS", "SMALL_FILTERS", "STRIDES"]

FLAMBY_FILTERS = (32, 64, 128, 256, 320, 320)
SMALL_FILTERS = (8, 16, 32, 64, 80, 80)
STRIDES: tuple[Sequence[int], ...] = (1, 2, 2, 2, 2, (1, 2, 2))


def nnunet_3d(filters: Sequence[int] = FLAMBY_FILTERS, num_classes: int = 3) -> nn.Module:
    """nnU-Net v1's 3D full-resolution U-Net for KiTS19 (FLamby's ``Baseline``) as MONAI ``DynUNet``."""
    if len(filters) != len(STRIDES):
        raise ConfigError(
            f"unet_filters needs {len(STRIDES)} widths (one per stage), got {list(filters)}",
            where="profile.unet_filters",
            fix=f"e.g. {list(FLAMBY_FILTERS)}",
        )
    return DynUNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=num_classes,
        kernel_size=[3] * len(STRIDES),
        strides=list(STRIDES),
        upsample_kernel_size=list(STRIDES[1:]),
        filters=[int(f) for f in filters],
        norm_name=("INSTANCE", {"affine": True, "eps": 1e-5}),
        act_name=("LEAKYRELU", {"negative_slope": 0.01, "inplace": True}),
        deep_supervision=False,
        res_block=False,
        trans_bias=False,
    )
