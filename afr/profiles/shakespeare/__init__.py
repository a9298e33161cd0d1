"""Shakespeare (LEAF): next-character prediction, one LEAF user per speaking role (play + character).

Data: LEAF JSON in ``<data_dir>/shakespeare/{train,test}`` (x = an 80-character string, y = the next
character), as LEAF writes it or as ``afr data fetch shakespeare`` produces it from the Gutenberg text
(``fetch.py``). Characters map to indices in LEAF's 80-symbol alphabet
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

from .profile import Shakespeare

__all__ = ["Shakespeare"]
