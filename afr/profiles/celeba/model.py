"""CelebA's model: LEAF's reference CNN (batch normalisation on batch statistics)."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["CelebaCNN"]


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
