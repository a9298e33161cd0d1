"""Reddit's model: LEAF's stacked LSTM language model."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["RedditLSTM"]


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
