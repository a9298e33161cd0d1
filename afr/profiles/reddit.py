"""LEAF Reddit: next-word prediction on December 2017 Reddit comments, grouped by author.

Data (``afr data fetch reddit``, see :mod:`afr.data.prepare.reddit`): LEAF's preprocessed format.
Per user, ``x`` is a list of comments, each a list of 10-token rows (``<BOS> tokens <EOS>`` padded
with ``<PAD>``); ``y`` is one dict per comment whose ``target_tokens`` are the same rows shifted by
one token and whose ``count_tokens`` rows hold 1 under every real input token, 0 under padding.
LEAF splits each user's comments by time into train / val / test (60/20/20); we train on ``train``,
test on ``test``, and carve our validation from ``train`` like every profile (LEAF's ``val`` is not
used). One sample here is one 10-token row.

Vocabulary (ours, LEAF's layout): ``<PAD>`` = 0, ``<UNK>`` = 1, then the ``vocab_size - 2`` most
frequent input tokens of the *training clients'* train rows (ties by token), as LEAF's
``build_vocab.py`` ranks them (LEAF counts every user's train split and has an off-by-one that
can give its most frequent word the UNK id; we give words ids 2.. and keep held-out groups out).
Targets under a 0 of ``count_tokens`` become -100 (ignored).

Model (LEAF's ``reddit/stacked_lstm.py``, 6,180,624 parameters at vocab 10,000 and 256 units):
embedding V x 256 -> 2-layer LSTM 256 -> dense 256 -> V at every step; every weight starts
U(-0.1, 0.1) and the forget bias at 0. Loss: cross-entropy averaged over the unmasked target tokens
(LEAF averages per time step first, then over steps; LEAF also clips the gradient norm at 5 and
carries the LSTM state from batch to batch, which the engine's plain SGD step does not do).
Accuracy: correct predictions over unmasked tokens, where predicting ``<PAD>`` or ``<UNK>`` always
counts wrong. ``vocab_size``, ``embedding_dim`` and ``hidden`` are configurable (the CPU presets
shrink them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import DataError
from ._base import ClientData, Evaluation
from ._leaf import LeafProfile, config_int

__all__ = ["Reddit", "RedditLSTM", "PAD", "UNK", "IGNORE", "SEQ_LEN"]

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<PAD>", "<UNK>"
IGNORE = -100  # target under a 0 of count_tokens
SEQ_LEN = 10


class RedditLSTM(nn.Module):
    """LEAF's Reddit language model: logits ``[n, seq, vocab]`` for token ids ``[n, seq]``."""

    def __init__(self, vocab_size: int = 10_000, embedding_dim: int = 256, hidden: int = 256) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden, num_layers=2, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab_size)
        with torch.no_grad():  # LEAF: U(-0.1, 0.1) initialiser on every variable, forget_bias = 0
            for param in self.parameters():
                param.uniform_(-0.1, 0.1)

    def forward(self, ids: Tensor) -> Tensor:
        outputs, _ = self.lstm(self.embedding(ids.long()))
        return self.decoder(outputs)


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

    def _ids(self, rows: Any, what: str) -> list[list[int]]:
        if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == SEQ_LEN for r in rows):
            raise DataError(
                f"{what} must be a list of {SEQ_LEN}-token rows, got {rows!r:.80}",
                fix="use LEAF's preprocessed Reddit files (`afr data fetch reddit`)",
            )
        table = self._provisional
        out = []
        for row in rows:
            ids = []
            for token in row:
                if not isinstance(token, str):
                    raise DataError(
                        f"{what} tokens must be strings, got {token!r:.40}",
                        fix="use LEAF's preprocessed Reddit files (`afr data fetch reddit`)",
                    )
                if token not in table:
                    table[token] = len(table)
                ids.append(table[token])
            out.append(ids)
        return out

    def encode(self, xs: list, ys: list) -> ClientData:
        """Comments -> rows: inputs int32 ``[rows, 10]`` (provisional ids until the vocabulary is
        fixed in :meth:`load_splits`), targets int64 ``[rows, 10]`` with -100 under masked tokens."""
        inputs: list[list[int]] = []
        targets: list[list[int]] = []
        for comment, label in zip(xs, ys, strict=True):
            if not isinstance(label, Mapping) or "target_tokens" not in label or "count_tokens" not in label:
                raise DataError(
                    "y must hold one dict per comment with target_tokens and count_tokens",
                    fix="use LEAF's preprocessed Reddit files (`afr data fetch reddit`)",
                )
            rows = self._ids(comment, "x")
            target_rows = self._ids(label["target_tokens"], "target_tokens")
            masks = label["count_tokens"]
            if not isinstance(masks, list) or len(masks) != len(rows) or len(target_rows) != len(rows):
                raise DataError(
                    "a comment's x, target_tokens and count_tokens have different numbers of rows",
                    fix="use LEAF's preprocessed Reddit files (`afr data fetch reddit`)",
                )
            for row, target, mask in zip(rows, target_rows, masks, strict=True):
                if not isinstance(mask, list) or len(mask) != SEQ_LEN:
                    raise DataError("count_tokens rows must have 10 entries", fix="re-fetch the data")
                inputs.append(row)
                targets.append([t if m else IGNORE for t, m in zip(target, mask, strict=True)])
        shape = (len(inputs), SEQ_LEN)
        return ClientData(
            torch.from_numpy(np.asarray(inputs, dtype=np.int32).reshape(shape)),
            torch.from_numpy(np.asarray(targets, dtype=np.int64).reshape(shape)),
        )

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
        """Cross-entropy over the unmasked target tokens of the batch."""
        return nn.functional.cross_entropy(
            outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1), ignore_index=IGNORE
        )

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        """Accuracy over unmasked tokens; ``outputs``: logits ``[n, seq, V]`` or predicted ids."""
        predicted = outputs.argmax(dim=-1) if outputs.ndim == 3 else outputs
        counted = targets != IGNORE
        total = int(counted.sum())
        if total == 0:
            return float("nan")
        correct = (predicted == targets) & counted & (predicted != PAD) & (predicted != UNK)
        return float(correct.sum()) / total

    def stratify_labels(self, data: ClientData) -> np.ndarray | None:
        return None

    @torch.no_grad()
    def evaluate(self, model: nn.Module, datasets: Sequence[ClientData]) -> Evaluation:
        # Only the arg-max leaves each chunk: a client's [rows, 10, vocab] logits would not fit in memory.
        return super().evaluate(_Predictions(model), datasets)
