"""FEMNIST's models: LEAF's CNN and a narrower variant for CPU budgets."""

from __future__ import annotations

from torch import Tensor, nn

from .dataset import NUM_CLASSES

__all__ = ["FemnistCNN"]


class FemnistCNN(nn.Module):
    """LEAF's FEMNIST CNN (``channels=(32, 64), hidden=2048``); smaller widths for the ``small`` variant."""

    def __init__(self, channels: tuple[int, int] = (32, 64), hidden: int = 2048) -> None:
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * 7 * 7, hidden), nn.ReLU(), nn.Linear(hidden, NUM_CLASSES)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
