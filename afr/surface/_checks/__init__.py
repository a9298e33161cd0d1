"""The checks behind :func:`afr.surface.validate`, one module per rule family, composed into one visitor.

* ``_structure``  -- module and class structure, scalar declarations;
* ``_imports``    -- which imports, and where;
* ``_functions``  -- functions and methods (hooks), scopes, annotations, parameter defaults;
* ``_names``      -- names, attributes, calls, values and the length of string literals;
* ``_statements`` -- global/nonlocal, async, yield, for, with, del, except and assignments.

``_base`` holds the state they share, ``_nodes`` read-only helpers on libcst nodes, ``_checker`` the
composed :class:`Checker` and its traversal.
"""

from ._checker import Checker

__all__ = ["Checker"]
