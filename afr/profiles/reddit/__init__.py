"""LEAF Reddit: next-word prediction on December 2017 Reddit comments, grouped by author.

Data (``afr data fetch reddit``, see :mod:`afr.profiles.reddit.fetch`): LEAF's preprocessed format.
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

from .profile import Reddit

__all__ = ["Reddit"]
