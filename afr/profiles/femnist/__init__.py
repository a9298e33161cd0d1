"""FEMNIST (LEAF): handwritten digits and letters of NIST SD19, one LEAF user per writer, 62 classes.

Data: LEAF JSON in ``<data_dir>/femnist/{train,test}`` -- as LEAF writes it (x = 784 floats
k/255, 28x28 row-major, 1.0 = white background; y = 0-9 digits, 10-35 upper, 36-61 lower case) or
as ``afr data fetch femnist`` produces it from NIST's raw zips (``fetch.py``).
Pixels are stored as uint8 (lossless for k/255 values) and become float (N, 1, 28, 28) in
:meth:`Femnist.train_batch` / :meth:`Femnist.eval_inputs`.

Grouping (``grouping:`` in the YAML): ``rule: hash`` -- writer ``w`` joins group
``sha256(w) mod (K + H)``. FEMNIST users are fairly even (226.8 +- 88.9 samples) and have no natural
attribute that survives LEAF's sampling: the 100-writer ``all_data_<i>`` chunks are arbitrary cuts of
the writer list (niid sampling acts per chunk, so each chunk keeps only ~5 writers at 5 %), so a hash
of the writer id is the honest rule, and it keeps a writer's group fixed whatever sample of writers
is present. ``rule: attribute`` groups by source chunk instead. On the shipped 105-writer subset,
K = 5 training groups + H = 1 held-out group gives 13-25 writers (1.6k-3.7k training images) per
group -- FLamby-like cross-silo scale (K = 2-6, a few thousand samples per client) -- and keeps 16
writers (2,328 images) never seen in training.

Model: LEAF's CNN (conv5x5 32 'same' ReLU, maxpool 2, conv5x5 64 'same' ReLU, maxpool 2,
dense 3136 -> 2048 ReLU, dense 2048 -> 62 logits; 6,603,710 parameters) and a registered
variant ``small_cnn`` (16 / 32 channels, dense 1568 -> 128; 222,078 parameters) for CPU budgets;
``default`` is the one named by the YAML's ``default_model`` (``leaf_cnn`` unless a preset says
otherwise). Cross-entropy, accuracy.
"""

from .profile import Femnist

__all__ = ["Femnist"]
