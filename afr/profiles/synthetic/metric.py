"""Loss and metric of Synthetic(α, β): cross-entropy on logits, accuracy."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = [
    "cross_entropy",
    "batched_cross_entropy",
    "cross_entropy_sample_loss",
    "cross_entropy_sample_grad",
    "accuracy",
]


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of the logits."""
    return nn.functional.cross_entropy(outputs, targets)


def batched_cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """:func:`cross_entropy` of each client's batch: logits ``[clients, batch, classes]`` -> ``[clients]``."""
    losses = nn.functional.cross_entropy(outputs.flatten(0, 1), targets.flatten(), reduction="none")
    return losses.view(outputs.shape[0], -1).mean(dim=1)


def cross_entropy_sample_loss(z: Tensor, targets: Tensor) -> Tensor:
    """Each sample's :func:`cross_entropy`: logits ``[clients, batch, classes]`` -> ``[clients, batch]``."""
    losses = nn.functional.cross_entropy(z.flatten(0, 1), targets.flatten(), reduction="none")
    return losses.view(targets.shape)


def cross_entropy_sample_grad(z: Tensor, targets: Tensor, scale: Tensor) -> Tensor:
    """d/dz of the sum over samples of ``scale`` (``[clients, batch, 1]``) x each sample's cross-entropy:
    autograd's own backward of nll_loss (-scale at the label) and of log_softmax."""
    log_probs = torch.log_softmax(z, dim=-1)
    grad = torch.zeros_like(z).scatter_(-1, targets.unsqueeze(-1), -scale.to(z.dtype))
    return torch.ops.aten._log_softmax_backward_data.default(grad, log_probs, -1, z.dtype)


def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Share of samples whose arg-max logit is the label."""
    return float((outputs.argmax(dim=1) == targets).float().mean())
