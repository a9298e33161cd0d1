"""Models of Fed-TCGA-BRCA: FLamby's linear Cox model and a small non-linear alternative."""

from __future__ import annotations

from torch import Tensor, nn

from .dataset import NUM_FEATURES

__all__ = ["CoxModel", "CoxMLP"]


class CoxModel(nn.Module):
    """FLamby's Baseline: Linear(39 -> 1), the output is the log-risk score."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(NUM_FEATURES, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x)


class CoxMLP(nn.Module):
    """A registered alternative: a small non-linear risk model."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
