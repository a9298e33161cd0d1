"""A hash of a candidate's code that ignores comments, formatting and docstrings."""

from __future__ import annotations

import ast
import hashlib

__all__ = ["normalized_ast_hash"]

_WITH_DOCSTRING = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def normalized_ast_hash(source: str) -> str:
    """sha256 (hex) of the source's AST without docstrings or positions.

    Two files differing only in comments, whitespace, line breaks or docstrings hash equal.
    Raises :class:`SyntaxError` if ``source`` does not parse.
    """
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, _WITH_DOCSTRING) and node.body and _is_docstring(node.body[0]):
            # A body of only a docstring means `pass`: keep it a valid, comparable body.
            node.body = node.body[1:] or [ast.Pass()]
    dump = ast.dump(tree, annotate_fields=True, include_attributes=False)
    return hashlib.sha256(dump.encode("utf-8")).hexdigest()


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )
