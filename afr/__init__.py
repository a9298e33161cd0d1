"""Auto-FL-Research: coding agents search federated-learning recipes; a same-budget control arm
that tunes only the baseline's scalars tells real algorithmic gains from tuning luck.

Kept nearly import-free (only the small ``_parsing`` guard, which must be in place before any thread
parses) so that ``afr`` commands start fast; import the subpackages you need
(``afr.profiles``, ``afr.recipe``, ``afr.engine``, ``afr.data``).
"""

from . import _parsing  # noqa: F401 -- makes ast.parse thread-safe for the whole process (see there)

__version__ = "0.1.0"
