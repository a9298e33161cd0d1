"""Models of Fed-Heart-Disease: FLamby's logistic regression and a small MLP, both with sigmoid outputs."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LogisticRegression", "SmallMLP"]


class LogisticRegression(nn.Module):
    """FLamby's Baseline: Linear(13 -> 1) + sigmoid (outputs probabilities)."""

    def __init__(self, in_features: int = 13) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.linear(x))


class SmallMLP(nn.Module):
    """A registered alternative: one hidden layer, sigmoid output."""

    def __init__(self, in_features: int = 13, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.net(x))
