"""The Sent140 profile: LEAF's Twitter users grouped into clients (see the package docstring)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ...errors import ConfigError, DataError
from .._base import ClientData
from .._leaf import LeafProfile, config_int, default_model_name
from .dataset import GLOVE_VOCAB_FILE, GLOVE_WORDS, GLOVE_ZIP, encode_tweets, read_glove_vocab
from .fetch import SOURCE
from .metric import accuracy, cross_entropy
from .model import BagOfWordsLogReg, SentimentLSTM

__all__ = ["Sent140"]

log = logging.getLogger(__name__)

VOCABULARIES = ("auto", "glove", "train")
DEFAULT_MODELS = ("bow_logreg", "lstm")


class Sent140(LeafProfile):
    """LEAF Sent140 as grouped clients; accuracy on 2 classes."""

    name = "sent140"
    metric_name = "accuracy"
    higher_is_better = True
    source = SOURCE
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
        return self.data_path

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
        table = self._glove_ids if self._glove_ids is not None else self._provisional
        return encode_tweets(xs, ys, table, max_words=self.max_words, grow=self._glove_ids is None)

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

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return cross_entropy(outputs, targets)

    def metric(self, outputs: Tensor, targets: Tensor) -> float:
        return accuracy(outputs, targets)

    def describe(self) -> dict[str, Any]:
        summary = super().describe()
        summary["vocabulary"] = (
            f"GloVe-6B ({GLOVE_WORDS} words)"
            if self.uses_glove
            else f"{self.train_vocab_size} most frequent training tokens (no GloVe)"
        )
        return summary
