"""LEAF Sent140: tweets of Sentiment140 (Go et al., 2009) grouped by Twitter user, binary sentiment.

Data (``afr data fetch sent140``, see :mod:`afr.profiles.sent140.fetch`): LEAF JSON with
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

from .profile import Sent140

__all__ = ["Sent140"]
