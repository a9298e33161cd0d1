"""The Reddit profile: LEAF's comment authors grouped into clients (see the package docstring)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from .._base import ClientData, Evaluation
from .._leaf import LeafProfile, config_int
from .dataset import IGNORE, PAD, PAD_TOKEN, UNK, UNK_TOKEN, encode_comments
from .fetch import SOURCE
from .metric import masked_cross_entropy, token_accuracy
from .model import RedditLSTM

__all__ = ["Reddit"]


class _Predictions(nn.Module):
    """Evaluation wrapper: the arg-max token per position instead of ``[n, seq, vocab]`` logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor) -> Tensor:
        return self.model(ids).argmax(dim=-1)


class Reddit(LeafProfile):
    """LEAF Reddit as grouped clients; next-token accuracy (pad/unk predictions wrong)."""

    name = "reddit"
    metric_name = "accuracy"
    higher_is_better = True
    source = SOURCE
    model_variants: ClassVar = {"default": lambda p: RedditLSTM(p.vocab_size, p.embedding_dim, p.hidden)}
    eval_batch_size: ClassVar[int] = 256  # logits are [rows, 10, vocab]: keep a chunk's in RAM

    def __init__(self, cfg: Mapping[str, Any], data_dir: str | Path | None = None) -> None:
        super().__init__(cfg, data_dir)
        self.vocab_size = config_int(cfg, "vocab_size", 10_000, low=3)
        self.embedding_dim = config_int(cfg, "embedding_dim", 256)
        self.hidden = config_int(cfg, "hidden", 256)
        self._provisional: dict[str, int] = {}
        self.vocabulary: list[str] | None = None  # id -> token, after loading

    # --- encoding --------------------------------------------------------------------------------

    def encode(self, xs: list, ys: list) -> ClientData:
        """Comments -> rows (see :func:`~afr.profiles.reddit.dataset.encode_comments`)."""
        return encode_comments(xs, ys, self._provisional)

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        # Provisional ids for every token seen; the training clients' train inputs then fix the vocabulary.
        self._provisional = {PAD_TOKEN: PAD, UNK_TOKEN: UNK}
        train, test = super().load_splits()
        tokens = sorted(self._provisional, key=self._provisional.__getitem__)
        self._provisional = {}
        counts = torch.zeros(len(tokens), dtype=torch.long)
        for part in train[: self.grouping.clients]:
            counts += torch.bincount(part.inputs.flatten().long(), minlength=len(tokens))
        counts[[PAD, UNK]] = 0
        ranked = sorted(
            (i for i in range(2, len(tokens)) if counts[i] > 0), key=lambda i: (-counts[i], tokens[i])
        )
        kept = ranked[: self.vocab_size - 2]
        remap = torch.full((len(tokens),), UNK, dtype=torch.long)
        remap[PAD] = PAD
        if kept:
            remap[torch.tensor(kept)] = torch.arange(2, len(kept) + 2)
        self.vocabulary = [PAD_TOKEN, UNK_TOKEN, *(tokens[i] for i in kept)]

        def apply(part: ClientData) -> ClientData:
            inputs = remap[part.inputs.long()].to(torch.int32)
            masked = part.targets == IGNORE
            targets = torch.where(masked, IGNORE, remap[part.targets.clamp(min=0)])
            return ClientData(inputs, targets)

        return [apply(d) for d in train], [apply(d) for d in test]

    # --- loss and metric -------------------------------------------------------------------------

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return masked_cross_entropy(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return token_accuracy(outputs, targets)

    def stratify_labels(self, data: ClientData) -> np.ndarray | None:
        return None

    @torch.no_grad()
    def evaluate(self, model: nn.Module, datasets: Sequence[ClientData]) -> Evaluation:
        # Only the arg-max leaves each chunk: a client's [rows, 10, vocab] logits would not fit in memory.
        return super().evaluate(_Predictions(model), datasets)
