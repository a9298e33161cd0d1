"""CelebA's loss and metric: LEAF's cross-entropy on 2 logits (smiling or not) and accuracy."""

from __future__ import annotations

from .._leaf import accuracy, cross_entropy

__all__ = ["cross_entropy", "accuracy"]
