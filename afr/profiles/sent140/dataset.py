"""Sent140's samples: LEAF's tokeniser, the GloVe-6B vocabulary, tweets as padded word ids."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from ...errors import DataError
from .._base import ClientData

__all__ = [
    "split_line",
    "read_glove_vocab",
    "encode_tweets",
    "GLOVE_WORDS",
    "GLOVE_VOCAB_FILE",
    "GLOVE_ZIP",
]

TOKEN = re.compile(r"[\w']+|[.,!?;]")
GLOVE_WORDS = 400_000
GLOVE_VOCAB_FILE = "glove_vocab.txt"
GLOVE_ZIP = "glove.6B.zip"
GLOVE_MEMBER = "glove.6B.50d.txt"  # every glove.6B.*d.txt lists the same words in the same order


def split_line(text: str) -> list[str]:
    """LEAF's Sent140 tokeniser: runs of word characters and apostrophes, or one of ``.,!?;``."""
    return TOKEN.findall(text)


def read_glove_vocab(folder: Path) -> list[str] | None:
    """GloVe-6B's words in file order, from ``glove_vocab.txt`` or ``glove.6B.zip``; None if neither."""
    vocab_file = folder / GLOVE_VOCAB_FILE
    if vocab_file.is_file():
        words = vocab_file.read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words.pop()
    elif (folder / GLOVE_ZIP).is_file():
        try:
            with zipfile.ZipFile(folder / GLOVE_ZIP) as archive, archive.open(GLOVE_MEMBER) as fh:
                words = [line.split(b" ", 1)[0].decode("utf-8") for line in fh]
        except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise DataError(
                f"cannot read the GloVe vocabulary from {GLOVE_ZIP}: {exc}",
                where=str(folder / GLOVE_ZIP),
                fix="delete the file and download glove.6B.zip again (https://nlp.stanford.edu/data/glove.6B.zip)",
            ) from exc
    else:
        return None
    if len(words) != GLOVE_WORDS or len(set(words)) != GLOVE_WORDS:
        raise DataError(
            f"GloVe vocabulary: {len(words)} words ({len(set(words))} distinct), expected {GLOVE_WORDS}",
            where=str(folder),
            fix=f"delete {GLOVE_VOCAB_FILE} / {GLOVE_ZIP} there and put the official glove.6B.zip back",
        )
    return words


def encode_tweets(xs: list, ys: list, table: dict[str, int], *, max_words: int, grow: bool) -> ClientData:
    """Tokenise each tweet (``x[4]``) to ``max_words`` ids from ``table`` (int32, 0-padded; 0 also for a
    word outside it, unless ``grow`` adds it with the next id); labels int64."""
    ids = np.zeros((len(xs), max_words), dtype=np.int32)
    for row, x in enumerate(xs):
        if not isinstance(x, list) or len(x) < 5 or not isinstance(x[4], str):
            raise DataError(
                f"sample {row}: x must be LEAF's [id, date, query, user, text, ...], got {x!r:.80}",
                fix="re-create the data with `afr data fetch sent140`",
            )
        for col, word in enumerate(split_line(x[4])[:max_words]):
            if grow and word not in table:
                table[word] = len(table) + 1
            ids[row, col] = table.get(word, 0)
    if any(y not in (0, 1) or isinstance(y, bool) for y in ys):
        raise DataError(
            f"labels must be 0 or 1, got {sorted({repr(y) for y in ys})[:4]}",
            fix="re-create the data with `afr data fetch sent140`",
        )
    return ClientData(torch.from_numpy(ids), torch.tensor([int(y) for y in ys], dtype=torch.long))
