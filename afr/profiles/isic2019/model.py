"""EfficientNet (Tan & Le, 2019) in plain torch, laid out like the ``efficientnet_pytorch`` package.

FLamby's ISIC 2019 model is ``efficientnet_pytorch``'s EfficientNet-B0 with its ``_fc`` replaced by a
``Linear(1280 -> 8)``. This module rebuilds that network: MBConv blocks (1x1 expansion, depthwise
conv, squeeze-and-excitation, 1x1 projection, identity skip with stochastic depth), swish (SiLU)
activations, BatchNorm with TF's momentum 0.01 / eps 1e-3, TF-style "same" padding computed once for
the nominal 224 x 224 input (as the package does when built by name), global average pooling,
dropout and the final linear layer. Parameter and buffer names match the package's, so its ImageNet
checkpoint (``efficientnet-b0-355c32eb.pth``) loads with :func:`load_pretrained`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "BlockSpec",
    "B0_BLOCKS",
    "EfficientNet",
    "efficientnet_b0",
    "load_pretrained",
    "round_filters",
    "round_repeats",
]


@dataclass(frozen=True)
class BlockSpec:
    """One stage of MBConv blocks: its first block may downsample, the others repeat at stride 1."""

    repeats: int
    kernel: int
    stride: int
    expand_ratio: int
    in_channels: int
    out_channels: int
    se_ratio: float = 0.25


#: EfficientNet-B0's seven stages (the paper's Table 1, the package's ``blocks_args``).
B0_BLOCKS: tuple[BlockSpec, ...] = (
    BlockSpec(1, 3, 1, 1, 32, 16),
    BlockSpec(2, 3, 2, 6, 16, 24),
    BlockSpec(2, 5, 2, 6, 24, 40),
    BlockSpec(3, 3, 2, 6, 40, 80),
    BlockSpec(3, 5, 1, 6, 80, 112),
    BlockSpec(4, 5, 2, 6, 112, 192),
    BlockSpec(1, 3, 1, 6, 192, 320),
)

_BN_MOMENTUM = 0.01  # TF's decay 0.99 expressed as PyTorch's momentum
_BN_EPS = 1e-3


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by the width multiplier, rounded to a multiple of ``divisor`` (never < 90 %)."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def round_repeats(repeats: int, depth: float) -> int:
    """Blocks per stage scaled by the depth multiplier (rounded up)."""
    return repeats if depth == 1.0 else int(math.ceil(depth * repeats))


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "same" padding (before, after) for one axis of length ``size``."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A Conv2d with TF-style "same" padding fixed for a nominal input size (asymmetric when odd)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        image_size: int,
        stride: int = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=bias)
        top, bottom = _same_padding(image_size, kernel_size, stride)
        self.pad = (top, bottom, top, bottom)  # F.pad order: left, right, top, bottom

    def forward(self, x: Tensor) -> Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        return super().forward(x)


def drop_connect(x: Tensor, rate: float, training: bool) -> Tensor:
    """Stochastic depth: zero the residual branch of whole samples with probability ``rate``."""
    if not training or rate <= 0.0:
        return x
    keep = 1.0 - rate
    mask = torch.floor(keep + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device))
    return x / keep * mask


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck: expand (1x1), depthwise (k x k), squeeze-excite, project (1x1)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        expand_ratio: int,
        se_ratio: float,
        image_size: int,
    ) -> None:
        super().__init__()
        self.skip = stride == 1 and in_channels == out_channels
        hidden = in_channels * expand_ratio
        # Attribute names follow efficientnet_pytorch so its checkpoints load unchanged.
        if expand_ratio != 1:
            self._expand_conv = SameConv2d(in_channels, hidden, 1, image_size=image_size)
            self._bn0 = nn.BatchNorm2d(hidden, momentum=_BN_MOMENTUM, eps=_BN_EPS)
        self._depthwise_conv = SameConv2d(
            hidden, hidden, kernel, image_size=image_size, stride=stride, groups=hidden
        )
        self._bn1 = nn.BatchNorm2d(hidden, momentum=_BN_MOMENTUM, eps=_BN_EPS)
        squeezed = max(1, int(in_channels * se_ratio))
        self._se_reduce = nn.Conv2d(hidden, squeezed, 1)
        self._se_expand = nn.Conv2d(squeezed, hidden, 1)
        self._project_conv = SameConv2d(hidden, out_channels, 1, image_size=math.ceil(image_size / stride))
        self._bn2 = nn.BatchNorm2d(out_channels, momentum=_BN_MOMENTUM, eps=_BN_EPS)
        self.expand = expand_ratio != 1

    def forward(self, inputs: Tensor, drop_rate: float = 0.0) -> Tensor:
        x = inputs
        if self.expand:
            x = F.silu(self._bn0(self._expand_conv(x)))
        x = F.silu(self._bn1(self._depthwise_conv(x)))
        squeeze = F.adaptive_avg_pool2d(x, 1)
        squeeze = self._se_expand(F.silu(self._se_reduce(squeeze)))
        x = torch.sigmoid(squeeze) * x
        x = self._bn2(self._project_conv(x))
        if self.skip:
            x = drop_connect(x, drop_rate, self.training) + inputs
        return x


class EfficientNet(nn.Module):
    """EfficientNet with a classification head (``_fc``).

    ``width``/``depth`` scale channels and blocks per stage (B0: 1.0 / 1.0); ``drop_connect_rate`` is
    the stochastic-depth rate of the last block (block i gets ``rate * i / n_blocks``, as in the
    package); ``image_size`` only fixes the "same" paddings (any input size runs).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        width: float = 1.0,
        depth: float = 1.0,
        dropout: float = 0.2,
        drop_connect_rate: float = 0.2,
        image_size: int = 224,
        blocks: tuple[BlockSpec, ...] = B0_BLOCKS,
    ) -> None:
        super().__init__()
        self.drop_connect_rate = drop_connect_rate
        stem = round_filters(32, width)
        self._conv_stem = SameConv2d(3, stem, 3, image_size=image_size, stride=2)
        self._bn0 = nn.BatchNorm2d(stem, momentum=_BN_MOMENTUM, eps=_BN_EPS)
        size = math.ceil(image_size / 2)
        layers: list[MBConvBlock] = []
        for spec in blocks:
            stage = replace(
                spec,
                in_channels=round_filters(spec.in_channels, width),
                out_channels=round_filters(spec.out_channels, width),
                repeats=round_repeats(spec.repeats, depth),
            )
            for i in range(stage.repeats):
                stride = stage.stride if i == 0 else 1
                in_channels = stage.in_channels if i == 0 else stage.out_channels
                layers.append(
                    MBConvBlock(
                        in_channels,
                        stage.out_channels,
                        stage.kernel,
                        stride,
                        stage.expand_ratio,
                        stage.se_ratio,
                        size,
                    )
                )
                size = math.ceil(size / stride)
        self._blocks = nn.ModuleList(layers)
        head = round_filters(1280, width)
        self._conv_head = SameConv2d(round_filters(blocks[-1].out_channels, width), head, 1, image_size=size)
        self._bn1 = nn.BatchNorm2d(head, momentum=_BN_MOMENTUM, eps=_BN_EPS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(head, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The last feature map (before pooling)."""
        x = F.silu(self._bn0(self._conv_stem(x)))
        n = len(self._blocks)
        for i, block in enumerate(self._blocks):
            x = block(x, self.drop_connect_rate * i / n)
        return F.silu(self._bn1(self._conv_head(x)))

    def forward(self, x: Tensor) -> Tensor:
        pooled = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self._fc(self._dropout(pooled))


def efficientnet_b0(num_classes: int = 8) -> EfficientNet:
    """EfficientNet-B0 as built by name: width/depth 1.0, dropout 0.2, stochastic depth 0.2, 224 x 224."""
    return EfficientNet(num_classes)


def load_pretrained(model: EfficientNet, state: Mapping[str, Tensor]) -> list[str]:
    """Copy a checkpoint laid out like ``efficientnet_pytorch``'s into ``model``, except the head.

    The classifier ``_fc`` keeps its fresh initialisation (ImageNet has 1000 classes, the task fewer);
    every other parameter and BatchNorm statistic must be present with the right shape. Returns the
    names that were not loaded; raises ``ValueError`` naming the mismatches otherwise.
    """
    own = model.state_dict()
    body = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    optional = {k for k in own if k.endswith("num_batches_tracked") or k.startswith("_fc.")}
    missing = sorted(set(own) - set(body) - optional)
    unexpected = sorted(set(body) - set(own))
    wrong = sorted(k for k in set(body) & set(own) if tuple(body[k].shape) != tuple(own[k].shape))
    if missing or unexpected or wrong:
        parts = [
            f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong))
            if names
        ]
        raise ValueError("checkpoint does not fit the model (" + "; ".join(parts) + ")")
    model.load_state_dict(body, strict=False)
    return sorted(set(own) - set(body))
