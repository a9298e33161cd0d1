"""LEAF Sent140: tweets of Sentiment140 (Go et al., 2009) grouped by Twitter user, binary sentiment.

Data (``afr data fetch sent140``, see :mod:`afr.data.prepare.sent140`): LEAF JSON with
``x = [id, date, query, user, text, "training"|"test"]`` and ``y = 1`` for polarity 4, else 0.
Users are grouped into clients by :class:`~afr.profiles._leaf.Grouping` (YAML ``grouping``).

Preprocessing (ours, in :meth:`Sent140.encode`, not in the models): LEAF's tokeniser
``[\\w']+|[.,!?;]`` on the text, the first ``max_words`` tokens kept as ids; id 0 stands for padding
and for any word outside the vocabulary (LEAF pads with its unknown id too). The vocabulary is

* ``vocabulary: glove`` -- GloVe-6B's 400,000 words in file order (LEAF's ids + 1), read from
  ``glove_vocab.txt`` (written by prepare) or straight from ``glove.6B.zip`` in the data folder;
* ``vocabulary: train`` -- the ``vocab_size`` most frequent tokens of the *training clients'* train
  split (ties by word), ids 1..vocab_size, so no held-out user's words shape the inputs;
* ``vocabulary: auto`` (default) -- glove when GloVe is in the data folder, else train (logged).

Models (``model_variants``; ``default`` builds the one the YAML's ``default_model`` names):

* ``bow_logreg`` (the default) -- bag-of-words logistic regression (LEAF's ``bag_log_reg``): logits =
  sum of a learned 2-vector per known token + bias, weights and bias ~ N(0, 1) as in LEAF. Chosen as
  the default for CPU: about 20 k parameters with the train vocabulary, a step costs well under a
  millisecond, it needs no embeddings download, and it is one of LEAF's two reference models.
* ``lstm`` -- LEAF's ``stacked_lstm``: Embedding(V + 1, 100) trainable, randomly initialised (LEAF
  builds the GloVe vocabulary but never loads the vectors), 2-layer LSTM 100 over the first
  ``seq_len`` = 25 ids, dense 100 -> 128 (linear) -> 2 on the last step. Differences from LEAF's
  TensorFlow cell: PyTorch's LSTM has two bias vectors per layer (+800 parameters) and we start the
  forget-gate bias at 1 to match TF's ``forget_bias=1``. With GloVe the embedding alone has 40 M
  parameters (LEAF's 40,174,086 in total); with the train vocabulary about 1 M.
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..data import profile_dir
from ..errors import ConfigError, DataError
from ._base import ClientData
from ._leaf import LeafProfile, config_int, default_model_name

__all__ = [
    "Sent140",
    "BagOfWordsLogReg",
    "SentimentLSTM",
    "split_line",
    "read_glove_vocab",
    "GLOVE_WORDS",
]

log = logging.getLogger(__name__)

TOKEN = re.compile(r"[\w']+|[.,!?;]")
GLOVE_WORDS = 400_000
GLOVE_VOCAB_FILE = "glove_vocab.txt"
GLOVE_ZIP = "glove.6B.zip"
GLOVE_MEMBER = "glove.6B.50d.txt"  # every glove.6B.*d.txt lists the same words in the same order
VOCABULARIES = ("auto", "glove", "train")
DEFAULT_MODELS = ("bow_logreg", "lstm")


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


class Sent140(LeafProfile):
    """LEAF Sent140 as grouped clients; accuracy on 2 classes."""

    name = "sent140"
    metric_name = "accuracy"
    higher_is_better = True
    model_variants: ClassVar = {
        "default": lambda p: p.build_model(p.default_model),
        "bow_logreg": lambda p: BagOfWordsLogReg(p.vocab_size),
        "lstm": lambda p: SentimentLSTM(p.vocab_size, p.seq_len, p.hidden),
    }

    def __init__(self, cfg: Mapping[str, Any], data_dir: str | Path | None = None) -> None:
        super().__init__(cfg, data_dir)
        self.default_model = default_model_name(cfg, DEFAULT_MODELS, self.name)
        self.seq_len = config_int(cfg, "seq_len", 25)
        self.max_words = max(self.seq_len, config_int(cfg, "max_words", 64))
        self.hidden = config_int(cfg, "hidden", 100)
        self.train_vocab_size = config_int(cfg, "vocab_size", 10_000)
        vocabulary = cfg.get("vocabulary", "auto")
        if vocabulary not in VOCABULARIES:
            raise ConfigError(
                f"vocabulary must be one of {', '.join(VOCABULARIES)}, got {vocabulary!r}",
                where="profile.vocabulary",
                fix="glove (GloVe-6B words), train (most frequent training tokens) or auto",
            )
        self.vocabulary_setting = vocabulary
        self._glove_ids: dict[str, int] | None = None
        self._provisional: dict[str, int] = {}
        self.vocabulary: list[str] | None = None  # id k -> word (index 0 = unknown/padding), after loading

    # --- vocabulary ------------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return profile_dir(self.name, self.data_dir)

    @property
    def uses_glove(self) -> bool:
        """Whether ids come from GloVe's vocabulary (decided from the config and the data folder)."""
        if self.vocabulary_setting == "glove":
            return True
        if self.vocabulary_setting == "train":
            return False
        return (self.folder / GLOVE_VOCAB_FILE).is_file() or (self.folder / GLOVE_ZIP).is_file()

    @property
    def vocab_size(self) -> int:
        """Number of word ids (id 0, unknown/padding, comes on top)."""
        return GLOVE_WORDS if self.uses_glove else self.train_vocab_size

    def _load_glove(self) -> dict[str, int]:
        words = read_glove_vocab(self.folder)
        if words is None:
            raise DataError(
                "vocabulary: glove but GloVe is not in the data folder",
                where=str(self.folder),
                fix=f"download https://nlp.stanford.edu/data/glove.6B.zip into that folder and run "
                f"`afr data fetch {self.name}` (or set profile.vocabulary=train)",
            )
        return {w: k + 1 for k, w in enumerate(words)}

    # --- encoding --------------------------------------------------------------------------------

    def encode(self, xs: list, ys: list) -> ClientData:
        """Tokenise each tweet (``x[4]``) to ``max_words`` ids (int32, 0-padded); labels int64."""
        ids = np.zeros((len(xs), self.max_words), dtype=np.int32)
        table = self._glove_ids if self._glove_ids is not None else self._provisional
        grow = self._glove_ids is None
        for row, x in enumerate(xs):
            if not isinstance(x, list) or len(x) < 5 or not isinstance(x[4], str):
                raise DataError(
                    f"sample {row}: x must be LEAF's [id, date, query, user, text, ...], got {x!r:.80}",
                    fix=f"re-create the data with `afr data fetch {self.name}`",
                )
            for col, word in enumerate(split_line(x[4])[: self.max_words]):
                if grow and word not in table:
                    table[word] = len(table) + 1
                ids[row, col] = table.get(word, 0)
        if any(y not in (0, 1) or isinstance(y, bool) for y in ys):
            raise DataError(
                f"labels must be 0 or 1, got {sorted({repr(y) for y in ys})[:4]}",
                fix=f"re-create the data with `afr data fetch {self.name}`",
            )
        return ClientData(torch.from_numpy(ids), torch.tensor([int(y) for y in ys], dtype=torch.long))

    def load_splits(self) -> tuple[list[ClientData], list[ClientData]]:
        if self.uses_glove:
            self._glove_ids = self._load_glove()
            log.info("sent140: GloVe-6B vocabulary (%d words)", GLOVE_WORDS)
            train, test = super().load_splits()
            self.vocabulary = ["", *sorted(self._glove_ids, key=self._glove_ids.__getitem__)]
            return train, test
        # First pass: every distinct token gets a provisional id; then only the training clients'
        # train rows decide the final vocabulary, so held-out groups never shape the inputs.
        self._provisional = {}
        train, test = super().load_splits()
        words = ["", *sorted(self._provisional, key=self._provisional.__getitem__)]
        counts = torch.zeros(len(words), dtype=torch.long)
        for part in train[: self.grouping.clients]:
            counts += torch.bincount(part.inputs.flatten().long(), minlength=len(words))
        counts[0] = 0
        ranked = sorted(
            (i for i in range(1, len(words)) if counts[i] > 0), key=lambda i: (-counts[i], words[i])
        )
        kept = ranked[: self.train_vocab_size]
        remap = torch.zeros(len(words), dtype=torch.int32)
        remap[torch.tensor(kept, dtype=torch.long)] = torch.arange(1, len(kept) + 1, dtype=torch.int32)
        self.vocabulary = ["", *(words[i] for i in kept)]
        self._provisional = {}
        if self.vocabulary_setting == "auto":
            log.warning(
                "sent140: GloVe not found in %s: vocabulary = the %d most frequent training tokens "
                "(of %d), embeddings trainable from random (put glove.6B.zip there for LEAF's vocabulary)",
                self.folder,
                len(kept),
                len(ranked),
            )

        def apply(part: ClientData) -> ClientData:
            return ClientData(remap[part.inputs.long()], part.targets)

        return [apply(d) for d in train], [apply(d) for d in test]

    def describe(self) -> dict[str, Any]:
        summary = super().describe()
        summary["vocabulary"] = (
            f"GloVe-6B ({GLOVE_WORDS} words)"
            if self.uses_glove
            else f"{self.train_vocab_size} most frequent training tokens (no GloVe)"
        )
        return summary
