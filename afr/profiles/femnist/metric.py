"""FEMNIST's loss and metric: LEAF's cross-entropy on the CNN's logits and accuracy."""

from __future__ import annotations

from .._leaf import accuracy, cross_entropy

__all__ = ["cross_entropy", "accuracy"]
