"""Shakespeare's samples: 80-character windows as indices into LEAF's alphabet; plays from user ids."""

from __future__ import annotations

import numpy as np
import torch

from ...errors import DataError
from .._base import ClientData

__all__ = ["ALL_LETTERS", "SEQ_LEN", "letter_indices", "encode_windows", "play_of_user"]

#: LEAF's alphabet (models/utils/language_utils.py): newline, space, punctuation, digits, letters, '}'.
ALL_LETTERS = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
SEQ_LEN = 80
_INDEX = np.full(128, -1, dtype=np.int64)  # ASCII code -> index in ALL_LETTERS (-1: not in it)
_INDEX[[ord(c) for c in ALL_LETTERS]] = np.arange(len(ALL_LETTERS))


def letter_indices(texts: list, what: str) -> np.ndarray:
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


def encode_windows(xs: list, ys: list) -> ClientData:
    """Windows -> uint8 indices (N, 80), next characters -> int64 indices; ``DataError`` if malformed."""
    if any(len(x) != SEQ_LEN for x in xs if isinstance(x, str)):
        raise DataError(
            f"Shakespeare x must be {SEQ_LEN}-character strings", fix="use LEAF's Shakespeare JSON"
        )
    if any(not isinstance(y, str) or len(y) != 1 for y in ys):
        raise DataError("Shakespeare y must be single characters", fix="use LEAF's Shakespeare JSON")
    inputs = letter_indices(xs, "inputs").reshape(len(xs), SEQ_LEN)
    targets = letter_indices(ys, "targets")
    return ClientData(torch.from_numpy(inputs.astype(np.uint8)), torch.from_numpy(targets))
