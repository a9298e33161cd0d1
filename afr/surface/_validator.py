"""Static validation of a candidate recipe file against a :class:`SurfaceTable` (libcst).

The validator never imports or runs the candidate. It is conservative: when it cannot tell whether a
name is local or a module, builtin or import, it assumes the stricter reading.

:func:`validate` first checks what needs no syntax tree (size, encoding), then parses and measures
the tree, then walks it with one :class:`~afr.surface._checks.Checker` whose rule families live in
``afr/surface/_checks``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from ._checks import Checker
from ._report import ValidationReport, Violation
from ._table import SurfaceTable

__all__ = ["validate"]

_Early = Callable[[str, int, int, str], None]
"""Records a violation found before the libcst tree exists: (rule, line, column, message)."""


def validate(
    source: str, table: SurfaceTable, *, filename: str = "candidate.py", package: str | None = None
) -> ValidationReport:
    """Check ``source`` against ``table`` without running it; every violation is reported.

    ``package`` (e.g. ``"afr.recipe"``) resolves relative imports, as for a file of that package.
    """
    found: list[Violation] = []

    def early(rule: str, line: int, column: int, message: str) -> None:
        found.append(Violation(rule, line, column, message, filename))

    module = _parse_checked(source, table, filename, early)
    if module is None:  # checking stopped early: the report keeps the order of discovery
        return ValidationReport(filename, found)
    found += _rule_violations(module, table, package, filename)
    unique = sorted(set(found), key=lambda v: (v.line, v.column, v.rule, v.message))
    return ValidationReport(filename, unique)


def _parse_checked(source: str, table: SurfaceTable, filename: str, early: _Early) -> cst.Module | None:
    """The libcst tree after the checks that need none, or None when a check stops the validation."""
    if not _check_text(source, table, early):
        return None
    try:
        tree = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        column = getattr(exc, "offset", None) or 1
        reason = getattr(exc, "msg", None) or str(exc)
        early("syntax", line, column, f"the file does not parse as Python 3.11: {reason}")
        return None
    if not _check_tree_size(tree, table, early):
        return None
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        early("syntax", exc.raw_line, exc.raw_column + 1, f"the file does not parse: {exc.message}")
        return None


def _check_text(source: str, table: SurfaceTable, early: _Early) -> bool:
    """Rules size-bytes, size-lines and encoding-declaration; False: too large to be worth parsing."""
    data = source.encode("utf-8", "surrogatepass")
    if len(data) > table.max_bytes:
        line = data[: table.max_bytes].count(b"\n") + 1
        early(
            "size-bytes",
            line,
            1,
            f"the file has {len(data)} bytes, over the limit of {table.max_bytes}: make the recipe smaller",
        )
        if len(data) > 4 * table.max_bytes:  # not worth parsing
            return False
    normal = source.replace("\r\n", "\n").replace("\r", "\n")
    lines = normal.count("\n") + (0 if normal.endswith("\n") or not normal else 1)
    if lines > table.max_lines:
        early(
            "size-lines",
            table.max_lines + 1,
            1,
            f"the file has {lines} lines, over the limit of {table.max_lines}: make the recipe shorter",
        )
    for number, text in enumerate(normal.split("\n")[:2], start=1):
        cookie = _CODING.match(text)
        if cookie and cookie.group(1).lower().replace("_", "-") not in ("utf-8", "utf8"):
            early(
                "encoding-declaration",
                number,
                1,
                f"coding declaration {cookie.group(1)!r} is not allowed: remove it (files are UTF-8)",
            )
    return True


_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")  # PEP 263


def _check_tree_size(tree: ast.AST, table: SurfaceTable, early: _Early) -> bool:
    """Rules size-nodes and size-depth; False: nested too deep to walk."""
    nodes, depth = _measure(tree)
    if nodes > table.max_nodes:
        early(
            "size-nodes",
            1,
            1,
            f"the file has {nodes} syntax nodes, over the limit of {table.max_nodes}: "
            "make the recipe smaller",
        )
    if depth > table.max_depth:
        early(
            "size-depth",
            1,
            1,
            f"the code nests {depth} levels deep, over the limit of {table.max_depth}: flatten it",
        )
        return False
    return True


def _measure(tree: ast.AST) -> tuple[int, int]:
    """Number of nodes and maximum nesting depth, without recursion."""
    count, deepest = 0, 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return count, deepest


def _rule_violations(
    module: cst.Module, table: SurfaceTable, package: str | None, filename: str
) -> list[Violation]:
    """Every rule on the libcst tree: the first pass over the module, then one walk."""
    checker = Checker(table, package)
    checker.check_module(module)
    checker.walk(module)
    if not checker.found:
        return []
    # Positions are only worth computing for a rejected file (they cost as much as the checks).
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    violations = []
    for node, rule, message in checker.found:
        start = positions[node].start
        violations.append(Violation(rule, start.line, start.column + 1, message, filename))
    return violations
