"""Static validation of a candidate recipe file against a :class:`SurfaceTable` (libcst).

The validator never imports or runs the candidate. It is conservative: when it cannot tell whether a
name is local or a module, builtin or import, it assumes the stricter reading.

:func:`validate` first checks what needs no syntax tree (size, encoding), then parses and measures
the tree, then walks it with one :class:`~afr.surface._checks.Checker` whose rule families live in
``afr/surface/_checks``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable

import libcst as cst
from libcst._nodes.internal import CodegenState

from afr._parsing import parse_python

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

    try:
        module = _parse_checked(source, table, filename, early)
        if module is None:  # checking stopped early: the report keeps the order of discovery
            return ValidationReport(filename, found)
        found += _rule_violations(module, table, package, filename)
    except (RecursionError, MemoryError) as exc:
        # The size checks bound the tree before any recursive walk; this is the last line of defence
        # (e.g. a parser's own recursion limit): a file that cannot be checked is rejected, never passed.
        early("unverifiable", 1, 1, f"the file cannot be checked ({type(exc).__name__}): simplify it")
    except Exception as exc:  # noqa: BLE001 -- an internal error must reject the file, not pass it or crash
        early("unverifiable", 1, 1, f"the validator failed on this file ({type(exc).__name__}: {exc})")
    unique = sorted(set(found), key=lambda v: (v.line, v.column, v.rule, v.message))
    return ValidationReport(filename, unique)


def _parse_checked(source: str, table: SurfaceTable, filename: str, early: _Early) -> cst.Module | None:
    """The libcst tree after the checks that need none, or None when a check stops the validation."""
    if not _check_text(source, table, early):
        return None
    try:
        tree = parse_python(source, filename=filename)
    except RecursionError:  # CPython's parser refuses deep nesting (e.g. 3000 chained `+`) this way
        early("size-depth", 1, 1, "the code nests too deep for the Python parser: flatten it")
        return None
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        column = getattr(exc, "offset", None) or 1
        reason = getattr(exc, "msg", None) or str(exc)
        early("syntax", line, column, f"the file does not parse as Python 3.11: {reason}")
        return None
    if not _check_tree_size(tree, source, table, early):
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
        return False  # parsing is only bounded in time for files within the size cap
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


def _check_tree_size(tree: ast.AST, source: str, table: SurfaceTable, early: _Early) -> bool:
    """Rules size-nodes and size-depth; False: too large or nested too deep to walk (the recursive
    libcst walk and the AST hash only ever see trees within both limits)."""
    nodes, depth = _measure(tree, source)
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
    return nodes <= table.max_nodes and depth <= table.max_depth


def _measure(tree: ast.AST, source: str) -> tuple[int, int]:
    """Number of nodes and maximum nesting depth, without recursion.

    The depth is the one libcst will see: ``a or b or c`` and implicitly concatenated strings are flat in
    the AST but nested one level per operand in libcst, which is walked recursively.
    """
    lines = source.splitlines(keepends=True)
    count, deepest = 0, 0
    stack: list[tuple[ast.AST, int, bool]] = [(tree, 1, False)]
    while stack:
        node, depth, in_fstring = stack.pop()
        count += 1
        if isinstance(node, ast.BoolOp):
            depth += len(node.values) - 1
        elif not in_fstring and (
            isinstance(node, ast.JoinedStr)
            or (isinstance(node, ast.Constant) and isinstance(node.value, str | bytes))
        ):
            depth += _string_parts(node, lines) - 1
        deepest = max(deepest, depth)
        if isinstance(node, _ITEMISED):
            # Each item of a literal or argument of a call is an AST node but three libcst objects
            # (wrapper, value, comma): counted as such, the node cap bounds libcst's work, not just the AST's.
            count += 2 * sum(1 for _ in ast.iter_child_nodes(node))
        inner = in_fstring or isinstance(node, ast.JoinedStr)
        stack.extend((child, depth + 1, inner) for child in ast.iter_child_nodes(node))
    return count, deepest


_ITEMISED = (ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Call)


def _string_parts(node: ast.expr, lines: list[str]) -> int:
    """How many literals an (implicitly concatenated) string node is made of; an upper bound is enough."""
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    if first >= len(lines):
        return 1
    if first == last:
        segment = lines[first][node.col_offset : node.end_col_offset]
    else:
        segment = "".join(
            [lines[first][node.col_offset :], *lines[first + 1 : last], lines[last][: node.end_col_offset]]
        )
    quotes = (segment.count('"') + segment.count("'")) // 2
    if quotes <= 16:  # cheap and already small: at most that many parts
        return max(quotes, 1)
    try:  # exact, by the tokenizer (only for strings with many quotes)
        tokens = tokenize.generate_tokens(io.StringIO("(" + segment + ")").readline)
        return max(sum(1 for t in tokens if t.type == tokenize.STRING), 1)
    except (tokenize.TokenError, SyntaxError):
        return quotes


def _rule_violations(
    module: cst.Module, table: SurfaceTable, package: str | None, filename: str
) -> list[Violation]:
    """Every rule on the libcst tree: the first pass over the module, then one walk."""
    checker = Checker(table, package)
    checker.check_module(module)
    checker.walk(module)
    if not checker.found:
        return []
    # Positions are only worth computing for a rejected file, and only for the reported nodes.
    positions = _locate(module, {id(node) for node, _, _ in checker.found})
    violations = []
    for node, rule, message in checker.found:
        line, column = positions.get(id(node), (1, 0))
        violations.append(Violation(rule, line, column + 1, message, filename))
    return violations


class _Locator(CodegenState):
    """Regenerates the code and notes where each wanted node's first code token lands (1-based line,
    0-based column): the start libcst's PositionProvider reports, at a fraction of its cost (it builds a
    position range for every node)."""

    def __init__(self, module: cst.Module, wanted: set[int]) -> None:
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.wanted = wanted
        self.found: dict[int, tuple[int, int]] = {}
        self.pending: list[int] = []
        self.line, self.column = 1, 0

    def before_codegen(self, node: cst.CSTNode) -> None:
        key = id(node)
        if key in self.wanted and key not in self.found:
            self.pending.append(key)

    def add_indent_tokens(self) -> None:
        for token in self.indent_tokens:
            self.add_token(token)

    def add_token(self, value: str) -> None:
        # The first token with code after a wanted node's start is where it starts (whitespace, newlines
        # and comments before it belong to the node's leading lines, not to its position).
        if self.pending and value.strip() and not value.lstrip().startswith("#"):
            for key in self.pending:
                self.found[key] = (self.line, self.column)
            self.pending.clear()
        newlines = value.count("\n") + value.count("\r") - value.count("\r\n")
        if newlines:
            self.line += newlines
            self.column = len(value) - max(value.rfind("\n"), value.rfind("\r")) - 1
        else:
            self.column += len(value)


def _locate(module: cst.Module, wanted: set[int]) -> dict[int, tuple[int, int]]:
    state = _Locator(module, wanted)
    module._codegen(state)
    return state.found
