"""Reddit's samples: LEAF's 10-token rows of each comment as ids, targets masked by ``count_tokens``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ...errors import DataError
from .._base import ClientData

__all__ = ["PAD", "UNK", "PAD_TOKEN", "UNK_TOKEN", "IGNORE", "SEQ_LEN", "token_ids", "encode_comments"]

PAD, UNK = 0, 1
PAD_TOKEN, UNK_TOKEN = "<PAD>", "<UNK>"
IGNORE = -100  # target under a 0 of count_tokens
SEQ_LEN = 10


def token_ids(rows: Any, what: str, table: dict[str, int]) -> list[list[int]]:
    """Rows of 10 tokens -> rows of ids from ``table``, adding each new token with the next id."""
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == SEQ_LEN for r in rows):
        raise DataError(
            f"{what} must be a list of {SEQ_LEN}-token rows, got {rows!r:.80}",
            fix="use LEAF's preprocessed Reddit files (`afr data fetch reddit`)",
        )
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


def encode_comments(xs: list, ys: list, table: dict[str, int]) -> ClientData:
    """Comments -> rows: inputs int32 ``[rows, 10]`` (ids from ``table``, provisional until the profile
    fixes the vocabulary), targets int64 ``[rows, 10]`` with -100 under masked tokens."""
    inputs: list[list[int]] = []
    targets: list[list[int]] = []
    for comment, label in zip(xs, ys, strict=True):
        if not isinstance(label, Mapping) or "target_tokens" not in label or "count_tokens" not in label:
            raise DataError(
                "y must hold one dict per comment with target_tokens and count_tokens",
                fix="use LEAF's preprocessed Reddit files (`afr data fetch reddit`)",
            )
        rows = token_ids(comment, "x", table)
        target_rows = token_ids(label["target_tokens"], "target_tokens", table)
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
