"""One lock around CPython's ``ast.parse``.

CPython 3.11's conversion of a parsed tree to Python objects keeps its recursion depth in interpreter-wide
state; a thread switch inside it (a garbage collection running a finaliser) lets another thread's
``ast.parse`` change that depth, and one of them fails with ``SystemError: AST constructor recursion depth
mismatch``. The two arms search in threads of their own (the agent parses its proposals while the control's
candidates are validated and hashed), so every ``ast.parse`` in afr goes through :func:`parse_python`, which
serialises only the parse itself — never a network call or a run.
"""

from __future__ import annotations

import ast
import threading

__all__ = ["parse_python"]

_PARSE_LOCK = threading.Lock()


def parse_python(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse(source, filename)``, one thread at a time (the same errors, e.g. ``SyntaxError``)."""
    with _PARSE_LOCK:
        return ast.parse(source, filename=filename)
