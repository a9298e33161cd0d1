"""Shakespeare's models: LEAF's character LSTM and a one-layer variant for CPU budgets."""

from __future__ import annotations

from torch import Tensor, nn

from .dataset import ALL_LETTERS

__all__ = ["CharLSTM"]


class CharLSTM(nn.Module):
    """LEAF's Shakespeare model: Embedding(80, 8) -> LSTM(256) x 2 -> dense(80) on the last step."""

    def __init__(
        self, vocab: int = len(ALL_LETTERS), embed: int = 8, hidden: int = 256, layers: int = 2
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(self.embedding(x))
        return self.head(out[:, -1])
