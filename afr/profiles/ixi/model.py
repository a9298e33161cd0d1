"""Fed-IXI's model: FLamby's 3D U-Net (TorchIO layout)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["UNet3D"]


class _ConvBlock(nn.Sequential):
    """3³ convolution (bias only without normalisation), optional BatchNorm, PReLU."""

    def __init__(self, in_channels: int, out_channels: int, *, norm: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=not norm)]
        if norm:
            layers.append(nn.BatchNorm3d(out_channels))
        layers.append(nn.PReLU())
        super().__init__(*layers)


class UNet3D(nn.Module):
    """FLamby's IXI U-Net: encoder blocks (w -> 2w convs, max-pool), a bottom block, decoder blocks
    (trilinear ×2 upsampling, concatenation with the skip, two convs), 1³ head and softmax.

    ``width`` is the first layer's width (8 in FLamby); each level doubles it.
    """

    def __init__(self, in_channels: int = 1, out_classes: int = 2, width: int = 8, levels: int = 3) -> None:
        super().__init__()
        self.encoders = nn.ModuleList()
        channels = in_channels
        for level in range(levels):
            first = width * 2**level
            block = nn.Sequential(_ConvBlock(channels, first, norm=level > 0), _ConvBlock(first, 2 * first))
            self.encoders.append(block)
            channels = 2 * first
        self.pool = nn.MaxPool3d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False)
        self.decoders = nn.ModuleList()
        for level in reversed(range(levels - 1)):
            skip = 2 * width * 2**level
            self.decoders.append(nn.Sequential(_ConvBlock(3 * skip, skip), _ConvBlock(skip, skip)))
        self.head = nn.Conv3d(2 * width, out_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for encoder in self.encoders[:-1]:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.encoders[-1](x)
        for decoder, skip in zip(self.decoders, reversed(skips), strict=True):
            x = decoder(torch.cat((skip, self.upsample(x)), dim=1))
        return torch.softmax(self.head(x), dim=1)
