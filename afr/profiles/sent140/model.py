"""Sent140's models: LEAF's bag-of-words logistic regression and its stacked LSTM."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["BagOfWordsLogReg", "SentimentLSTM"]


class BagOfWordsLogReg(nn.Module):
    """Logistic regression on token counts: ``logits = sum_t W[id_t] + b``; id 0 (unknown, padding)
    counts nothing, as LEAF's bag of words skips out-of-vocabulary words."""

    def __init__(self, vocab_size: int, num_classes: int = 2) -> None:
        super().__init__()
        self.weight = nn.EmbeddingBag(vocab_size + 1, num_classes, mode="sum", padding_idx=0)
        self.bias = nn.Parameter(torch.empty(num_classes))
        with torch.no_grad():  # LEAF: W, b ~ N(0, 1)
            self.weight.weight.normal_()
            self.weight.weight[0].zero_()
            self.bias.normal_()

    def forward(self, ids: Tensor) -> Tensor:
        return self.weight(ids.long()) + self.bias


class SentimentLSTM(nn.Module):
    """LEAF's Sent140 LSTM: embedding -> 2-layer LSTM -> last step -> dense 128 (linear) -> classes."""

    def __init__(self, vocab_size: int, seq_len: int = 25, hidden: int = 100, num_classes: int = 2) -> None:
        super().__init__()
        self.seq_len = seq_len
        self.embedding = nn.Embedding(vocab_size + 1, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=2, batch_first=True)
        self.dense = nn.Linear(hidden, 128)
        self.out = nn.Linear(128, num_classes)
        with torch.no_grad():  # TF's BasicLSTMCell adds forget_bias = 1 to the forget gate
            for layer in range(2):
                getattr(self.lstm, f"bias_ih_l{layer}")[hidden : 2 * hidden].fill_(1.0)
                getattr(self.lstm, f"bias_hh_l{layer}")[hidden : 2 * hidden].zero_()

    def forward(self, ids: Tensor) -> Tensor:
        outputs, _ = self.lstm(self.embedding(ids[:, : self.seq_len].long()))
        return self.out(self.dense(outputs[:, -1]))
