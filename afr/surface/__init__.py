"""The recipe surface: what code a candidate recipe may contain, checked before it ever runs.

One :class:`SurfaceTable` per profile lists the allowed imports, calls, hooks and limits;
:func:`validate` checks a candidate's source against it statically (libcst), and
:func:`normalized_ast_hash` identifies candidates modulo comments, formatting, docstrings and the names of
the file's own classes, parameters and local variables.
``python -m afr.surface docs`` renders ``docs/surface.md`` from the tables.
"""

from __future__ import annotations

from ._docs import render_profile_surface, render_surface_docs
from ._hash import HASH_VERSION, is_legacy_hash, legacy_ast_hash, normalized_ast_hash
from ._report import RULES, ValidationReport, Violation
from ._table import HOOKS, SurfaceTable, all_tables, surface_table
from ._validator import validate

__all__ = [
    "SurfaceTable",
    "surface_table",
    "all_tables",
    "HOOKS",
    "RULES",
    "Violation",
    "ValidationReport",
    "validate",
    "normalized_ast_hash",
    "legacy_ast_hash",
    "is_legacy_hash",
    "HASH_VERSION",
    "render_surface_docs",
    "render_profile_surface",
]
