"""Models of Synthetic(α, β): multinomial logistic regression (FedProx's) and a small MLP."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["MultinomialLogisticRegression", "SmallMLP"]


class MultinomialLogisticRegression(nn.Module):
    def __init__(self, dim: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class SmallMLP(nn.Module):
    def __init__(self, dim: int, num_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
