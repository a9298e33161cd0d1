"""Shakespeare (LEAF): next-character prediction, one LEAF user per speaking role (play + character).

Data: LEAF JSON in ``<data_dir>/shakespeare/{train,test}`` (x = an 80-character string, y = the next
character), as LEAF writes it or as ``afr data fetch shakespeare`` produces it from the Gutenberg text
(``afr/data/prepare/shakespeare.py``). Characters map to indices in LEAF's 80-symbol alphabet
:data:`ALL_LETTERS`; a character outside it is a ``DataError`` (LEAF's ``str.find`` would silently
give -1). Inputs are stored as uint8 indices and become int64 in :meth:`train_batch` / :meth:`eval_inputs`.

Grouping (``grouping:`` in the YAML): ``rule: attribute`` with the play as attribute -- LEAF's
``hierarchies`` entry when the JSON has one, else derived from the user id, which LEAF builds as
``PLAY_CHARACTER`` with non-alphanumerics replaced by ``_``: the play is the id without its last
``_`` token, shortened to the shortest such prefix shared with another user's derived play (so a
two-word character such as ``..._FIRST_LORD`` still lands in its play). All roles of a play stay in
one client, the natural non-iid split of the task. Plays are dealt to groups largest-first
(balancing training samples). The shipped subset has no ``hierarchies``, 10 users and 5 plays by id:
K = 4 training groups + H = 1 held-out group (one play each) is the most clients it supports with a
held-out play. Note: in that subset the play part of several ids does not match the character
(e.g. ``MUCH_ADO_ABOUT_NOTHING_IAGO``): LEAF's parser mislabels plays; we group by the label as given.

Validation (20 % of each client's train split) is the tail of each role's windows, and the 79
training windows overlapping it are left out of ``fit`` (LEAF's own split leaves the same gap): the
base profile's random carve would put a one-character shift of every validation window into ``fit``.

Model: LEAF's character LSTM -- Embedding(80, 8), 2-layer LSTM(256), dense 256 -> 80 on the last
step (819,920 parameters in PyTorch, which keeps two bias vectors per gate; TF's has 817,872).
A registered ``small_lstm`` (one LSTM layer of 64; 24,784 parameters) serves CPU budgets; ``default``
is the one named by the YAML's ``default_model`` (``leaf_lstm`` unless a preset says otherwise).
Cross-entropy on logits, accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import DataError
from ._base import ClientData
from ._leaf import LeafProfile, LeafSplit
from ._leaf import default_model_name as _default_model

__all__ = ["Shakespeare", "CharLSTM", "ALL_LETTERS", "SEQ_LEN", "play_of_user"]

#: LEAF's alphabet (models/utils/language_utils.py): newline, space, punctuation, digits, letters, '}'.
ALL_LETTERS = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
SEQ_LEN = 80
_INDEX = np.full(128, -1, dtype=np.int64)  # ASCII code -> index in ALL_LETTERS (-1: not in it)
_INDEX[[ord(c) for c in ALL_LETTERS]] = np.arange(len(ALL_LETTERS))


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


def _indices(texts: list, what: str) -> np.ndarray:
    """Strings -> (N, len) int64 indices into :data:`ALL_LETTERS`; ``DataError`` on foreign characters."""
    if not all(isinstance(t, str) for t in texts):
        raise DataError(f"Shakespeare {what} must be strings", fix="use LEAF's Shakespeare JSON")
    joined = "".join(texts)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    index = np.where(codes < len(_INDEX), _INDEX[np.minimum(codes, len(_INDEX) - 1)], -1)
    if (index < 0).any():
        foreign = sorted({joined[i] for i in np.flatnonzero(index < 0)[:1000]})
        raise DataError(
            f"Shakespeare {what} contain characters outside LEAF's 80-symbol alphabet: {foreign!r}",
            fix="use LEAF's Shakespeare JSON or `afr data fetch shakespeare`",
        )
    return index


def play_of_user(user: str, all_users: list[str]) -> str:
    """The play of a LEAF Shakespeare user id ``PLAY_CHARACTER`` when the JSON has no hierarchies."""
    candidates = {u.rsplit("_", 1)[0] for u in all_users if "_" in u}
    own = user.rsplit("_", 1)[0] if "_" in user else user
    shared = [c for c in candidates if user.startswith(c + "_") and c != user]
    return min(shared, key=len) if shared else own


class Shakespeare(LeafProfile):
    name = "shakespeare"
    metric_name = "accuracy"
    higher_is_better = True
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
        if any(len(x) != SEQ_LEN for x in xs if isinstance(x, str)):
            raise DataError(
                f"Shakespeare x must be {SEQ_LEN}-character strings", fix="use LEAF's Shakespeare JSON"
            )
        if any(not isinstance(y, str) or len(y) != 1 for y in ys):
            raise DataError("Shakespeare y must be single characters", fix="use LEAF's Shakespeare JSON")
        inputs = _indices(xs, "inputs").reshape(len(xs), SEQ_LEN)
        targets = _indices(ys, "targets")
        return ClientData(torch.from_numpy(inputs.astype(np.uint8)), torch.from_numpy(targets))

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
