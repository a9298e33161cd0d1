"""One lock around CPython's ``ast.parse``, for every caller in the process.

CPython 3.11's conversion of a parsed tree to Python objects keeps its recursion depth in interpreter-wide
state; a thread switch inside it (a garbage collection running a finaliser) lets another thread's
conversion change that depth, and one of them fails with ``SystemError: AST constructor recursion depth
mismatch``. The two arms search in threads of their own, and ``ast.parse`` is not only ours: libcst's
``evaluated_value`` (``ast.literal_eval``), ``inspect.signature`` of builtins, ``traceback``'s error carets,
matplotlib's rc parsing and torch's source loading all call it — a lock around afr's own parses alone still
failed (a CI run: the evolve agent's parse against the validator's libcst ``literal_eval`` in the other arm).

So importing this module (``import afr`` does) replaces ``ast.parse`` — which ``ast.literal_eval`` also
calls — with one that holds a process-wide re-entrant lock for the parse only (never for a network call or a
run), and retries the rare mismatch that a conversion outside ``ast.parse`` (a direct ``compile(...,
PyCF_ONLY_AST)`` in someone's thread) can still cause: parsing is pure, and the counter is whole again once
the other conversion ends. Deliberately a patch of the standard library rather than per-call wrappers: the
callers that raced are in libraries we do not own.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["guard_ast_parse", "parse_python"]

_PARSE_LOCK = threading.RLock()  # re-entrant: a finaliser that parses, inside a parse, in the same thread
_MISMATCH = "recursion depth mismatch"
_RETRIES = 5

_original_parse: Callable[..., Any] = ast.parse


def _guarded_parse(*args: Any, **kwargs: Any) -> Any:
    for attempt in range(_RETRIES + 1):
        try:
            with _PARSE_LOCK:
                return _original_parse(*args, **kwargs)
        except SystemError as error:
            if _MISMATCH not in str(error) or attempt == _RETRIES:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


_guarded_parse.__doc__ = ast.parse.__doc__
_guarded_parse.__wrapped__ = _original_parse  # type: ignore[attr-defined]


def guard_ast_parse() -> None:
    """Make ``ast.parse`` (and so ``ast.literal_eval``) thread-safe in this process; idempotent."""
    ast.parse = _guarded_parse  # type: ignore[assignment]


def parse_python(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse(source, filename)``, one thread at a time (the same errors, e.g. ``SyntaxError``)."""
    return _guarded_parse(source, filename=filename)


guard_ast_parse()
