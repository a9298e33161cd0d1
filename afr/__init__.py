"""Auto-FL-Research: coding agents search federated-learning recipes; a same-budget control arm
that tunes only the baseline's scalars tells real algorithmic gains from tuning luck.

Kept import-free so that ``afr`` commands start fast; import the subpackages you need
(``afr.profiles``, ``afr.recipe``, ``afr.engine``, ``afr.data``).
"""

__version__ = "0.1.0"
