"""The Shakespeare profile: LEAF speaking roles grouped by play into clients (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._base import ClientData
from .._leaf import LeafProfile, LeafSplit
from .._leaf import default_model_name as _default_model
from .dataset import SEQ_LEN, encode_windows, play_of_user
from .fetch import SOURCE
from .metric import accuracy, cross_entropy
from .model import CharLSTM

__all__ = ["Shakespeare"]


class Shakespeare(LeafProfile):
    name = "shakespeare"
    metric_name = "accuracy"
    higher_is_better = True
    source = SOURCE
    model_variants: ClassVar = {
        "default": lambda p: p.build_model(p.default_model),
        "leaf_lstm": lambda p: CharLSTM(),
        "small_lstm": lambda p: CharLSTM(hidden=64, layers=1),
    }
    attribute_name = "a play"
    sequence_overlap = SEQ_LEN

    def __init__(self, cfg: Mapping[str, Any], data_dir: str | Path | None = None) -> None:
        super().__init__(cfg, data_dir)
        self.default_model = _default_model(self.cfg, ("leaf_lstm", "small_lstm"), self.name)

    def encode(self, xs: list, ys: list) -> ClientData:
        return encode_windows(xs, ys)

    def user_attributes(self, train: LeafSplit) -> dict[str, str]:
        if all(u in train.hierarchies for u in train.users):
            return {u: train.hierarchies[u] for u in train.users}
        return {u: play_of_user(u, train.users) for u in train.users}

    def train_batch(
        self, inputs: Tensor, targets: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        return inputs.long(), targets

    def eval_inputs(self, inputs: Tensor) -> Tensor:
        return inputs.long()

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return cross_entropy(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return accuracy(outputs, targets)
