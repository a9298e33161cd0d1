"""Static validation of a candidate recipe file against a :class:`SurfaceTable` (libcst).

The validator never imports or runs the candidate. It is conservative: when it cannot tell whether a
name is local or a module, builtin or import, it assumes the stricter reading.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from ._table import ATTRIBUTE_BUILTINS, BUILTIN_NAMES, RECIPE_PACKAGE, SurfaceTable

__all__ = ["Violation", "ValidationReport", "validate", "RULES"]

RULES: dict[str, str] = {
    "syntax": "The file must parse as Python 3.11.",
    "encoding-declaration": "No coding declaration but utf-8 (the executed text must be the checked text).",
    "non-ascii-name": "Identifiers are ASCII (Python folds look-alike letters: `ｅｖａｌ` is `eval`).",
    "size-bytes": "The file may not exceed the table's byte limit (UTF-8).",
    "size-lines": "The file may not exceed the table's line limit.",
    "size-nodes": "The file may not exceed the table's number of Python AST nodes.",
    "size-depth": "Syntax may not nest deeper than the table's depth limit.",
    "long-string": "A string literal may not exceed the table's length limit.",
    "import-not-allowed": "Only modules of the allowed imports; `import M` only where M is allowed whole.",
    "import-name-not-allowed": "`from M import name` only for names the table lists for M.",
    "import-star": "`from M import *` is not allowed.",
    "relative-import": "Relative imports only when validating a file of a package (`package=`).",
    "nested-import": "Imports only at module level.",
    "module-statement": "Module level holds only docstrings, imports, literal constants, functions, classes.",
    "no-recipe-class": "The file must define at least one recipe class.",
    "class-base": "A class has exactly one base: a recipe base or an earlier class of the file; no keywords.",
    "class-decorator": "Classes take no decorators.",
    "nested-class": "Classes only at module level.",
    "class-statement": "A class body holds docstrings, `name`, scalar declarations, literal constants, "
    "methods.",
    "scalar-declaration": "`scalar(default, low, high, log=, integer=)` with literals and a valid range.",
    "reserved-name": "Recipe machinery (`declared_scalars`, `scalar_values`, dunders) may not be redefined; "
    "`name` only as a string, hooks only as methods.",
    "dunder-def": "No function or method with a dunder name (`__init__`, `__getattr__`…).",
    "hook-signature": "A hook is a plain method with exactly the hook's parameter names, in order.",
    "frozen-hook": "Hooks outside the profile's mutable hooks may not be overridden.",
    "decorator": "Functions take no decorator but `@staticmethod`.",
    "default-value": "Parameter defaults are plain literals (they are evaluated on import).",
    "annotation": "Annotations only name types: names, attributes, subscripts, `|`, literals.",
    "forbidden-name": "Forbidden builtins and dunder names may not appear at all.",
    "forbidden-attribute": "No attributes with a forbidden prefix (`_`, `register_`) or forbidden by name.",
    "dynamic-attribute": "getattr/setattr/delattr/hasattr only with a string-literal attribute.",
    "call-not-allowed": "Module functions and builtins are called only if on the allowed calls.",
    "reference-not-allowed": "Modules are used only through their attributes; module attributes and builtins "
    "used as values must be allowed.",
    "global-statement": "No `global` or `nonlocal`.",
    "async": "No `async def`, `await`, `async for` or `async with`.",
    "yield": "No generators (`yield`, `yield from`).",
    "del-attribute": "No `del obj.attr`.",
    "attribute-assignment": "No attribute assignment (setattr/delattr included): state lives in server_state "
    "and ctx.client_state, never on objects shared by clients, server and engine.",
    "with-not-allowed": "`with` only on the allowed context managers (`torch.no_grad()`…).",
    "bare-except": "No bare `except:` (it would swallow the sandbox's interrupts).",
}


@dataclass(frozen=True)
class Violation:
    """One broken rule: where (1-based line and column) and what to do about it."""

    rule: str
    line: int
    column: int
    message: str
    filename: str = "candidate.py"

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}:{self.column}: [{self.rule}] {self.message}"


@dataclass(frozen=True)
class ValidationReport:
    """All violations of one candidate (empty: accepted)."""

    filename: str
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def rules(self) -> list[str]:
        """Rule ids of the violations, in report order."""
        return [v.rule for v in self.violations]

    def __str__(self) -> str:
        if self.ok:
            return f"{self.filename}: accepted"
        return "\n".join(map(str, self.violations))


def validate(
    source: str, table: SurfaceTable, *, filename: str = "candidate.py", package: str | None = None
) -> ValidationReport:
    """Check ``source`` against ``table`` without running it; every violation is reported.

    ``package`` (e.g. ``"afr.recipe"``) resolves relative imports, as for a file of that package.
    """
    found: list[Violation] = []

    def early(rule: str, line: int, column: int, message: str) -> None:
        found.append(Violation(rule, line, column, message, filename))

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
            return ValidationReport(filename, found)
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
    try:
        tree = ast.parse(source, filename=filename)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        column = getattr(exc, "offset", None) or 1
        reason = getattr(exc, "msg", None) or str(exc)
        early("syntax", line, column, f"the file does not parse as Python 3.11: {reason}")
        return ValidationReport(filename, found)
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
        return ValidationReport(filename, found)
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        early("syntax", exc.raw_line, exc.raw_column + 1, f"the file does not parse: {exc.message}")
        return ValidationReport(filename, found)
    checker = _Checker(table, package)
    checker.check_module(module)
    checker.walk(module)
    if checker.found:
        # Positions are only worth computing for a rejected file (they cost as much as the checks).
        positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        for node, rule, message in checker.found:
            start = positions[node].start
            found.append(Violation(rule, start.line, start.column + 1, message, filename))
    unique = sorted(set(found), key=lambda v: (v.line, v.column, v.rule, v.message))
    return ValidationReport(filename, unique)


_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")  # PEP 263


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


# --- helpers on libcst nodes -------------------------------------------------------------------------


def _dotted(node: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a chain of names, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = _dotted(node.value)
        return None if head is None else f"{head}.{node.attr.value}"
    return None


def _chain_root(node: cst.Attribute) -> tuple[cst.Name | None, list[cst.Attribute]]:
    inner: list[cst.Attribute] = []
    value: cst.BaseExpression = node.value
    while isinstance(value, cst.Attribute):
        inner.append(value)
        value = value.value
    return (value if isinstance(value, cst.Name) else None), inner


def _number(node: cst.BaseExpression) -> float | None:
    sign = 1.0
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus | cst.Plus):
        sign = -1.0 if isinstance(node.operator, cst.Minus) else 1.0
        node = node.expression
    if isinstance(node, cst.Integer | cst.Float):
        return sign * float(node.evaluated_value)
    return None


def _is_literal(node: cst.BaseExpression, *, mutable: bool = False) -> bool:
    """Plain immutable literals: numbers, strings (not f-strings), True/False/None, tuples of them.

    Lists, sets and dicts only with ``mutable=True``: a mutable constant at module or class level, or as
    a parameter default, is one object shared by every client and the server — a side channel.
    """
    if _number(node) is not None or isinstance(node, cst.SimpleString | cst.Imaginary | cst.Ellipsis):
        return True
    if isinstance(node, cst.Name):
        return node.value in ("True", "False", "None")
    if isinstance(node, cst.ConcatenatedString):
        return _is_literal(node.left) and _is_literal(node.right)
    if isinstance(node, cst.Tuple) or (mutable and isinstance(node, cst.List | cst.Set)):
        elements = node.elements
        return all(isinstance(e, cst.Element) and _is_literal(e.value, mutable=mutable) for e in elements)
    if mutable and isinstance(node, cst.Dict):
        return all(
            isinstance(e, cst.DictElement)
            and _is_literal(e.key, mutable=mutable)
            and _is_literal(e.value, mutable=mutable)
            for e in node.elements
        )
    return False


def _is_docstring(stmt: cst.BaseSmallStatement) -> bool:
    return isinstance(stmt, cst.Expr) and isinstance(stmt.value, cst.SimpleString | cst.ConcatenatedString)


def _statements(body: cst.BaseSuite) -> Sequence[cst.BaseStatement | cst.BaseSmallStatement]:
    return body.body


def _target_names(node: cst.BaseExpression) -> Iterator[cst.Name]:
    if isinstance(node, cst.Name):
        yield node
    elif isinstance(node, cst.Tuple | cst.List):
        for element in node.elements:
            yield from _target_names(element.value)
    elif isinstance(node, cst.StarredElement):
        yield from _target_names(node.value)


def _call_attributes(node: cst.ClassDef) -> Iterator[str]:
    """Class attributes assigned from a call: the class's scalar declarations."""
    for stmt in _statements(node.body):
        for small in stmt.body if isinstance(stmt, cst.SimpleStatementLine) else []:
            if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
                yield from (n.value for t in small.targets for n in _target_names(t.target))
            elif isinstance(small, cst.AnnAssign) and isinstance(small.value, cst.Call):
                yield from (n.value for n in _target_names(small.target))


def _bound_name(alias: cst.ImportAlias) -> str:
    """The name an import alias binds (``import a.b`` binds ``a``)."""
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return alias.asname.name.value
    return (_dotted(alias.name) or "").partition(".")[0]


def _param_names(params: cst.Parameters) -> tuple[str, ...]:
    names = [p.name.value for p in (*params.posonly_params, *params.params)]
    if isinstance(params.star_arg, cst.Param):
        names.append("*" + params.star_arg.name.value)
    names.extend(p.name.value for p in params.kwonly_params)
    if params.star_kwarg is not None:
        names.append("**" + params.star_kwarg.name.value)
    return tuple(names)


def _bindings(fn: cst.FunctionDef) -> set[str]:
    """Names a function binds (parameters and assignment-like targets), a superset-free approximation.

    Walrus and comprehension targets are left out on purpose: a name the validator wrongly takes
    for a builtin or an import is checked more strictly, never less.
    """
    names = {name.lstrip("*") for name in _param_names(fn.params)}

    def block(suite: cst.BaseSuite) -> None:
        for stmt in suite.body:
            statement(stmt)

    def statement(stmt: cst.CSTNode) -> None:
        if isinstance(stmt, cst.SimpleStatementLine | cst.SimpleStatementSuite):
            for small in stmt.body:
                if isinstance(small, cst.Assign):
                    for target in small.targets:
                        names.update(n.value for n in _target_names(target.target))
                elif isinstance(small, cst.AnnAssign | cst.AugAssign):
                    names.update(n.value for n in _target_names(small.target))
        elif isinstance(stmt, cst.FunctionDef | cst.ClassDef):
            names.add(stmt.name.value)
        elif isinstance(stmt, cst.If):
            block(stmt.body)
            if stmt.orelse is not None:
                statement(stmt.orelse)
        elif isinstance(stmt, cst.Else):
            block(stmt.body)
        elif isinstance(stmt, cst.For | cst.While):
            if isinstance(stmt, cst.For):
                names.update(n.value for n in _target_names(stmt.target))
            block(stmt.body)
            if stmt.orelse is not None:
                block(stmt.orelse.body)
        elif isinstance(stmt, cst.Try | cst.TryStar):
            block(stmt.body)
            for handler in stmt.handlers:
                if handler.name is not None:
                    names.update(n.value for n in _target_names(handler.name.name))
                block(handler.body)
            if stmt.orelse is not None:
                block(stmt.orelse.body)
            if stmt.finalbody is not None:
                block(stmt.finalbody.body)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                if item.asname is not None:
                    names.update(n.value for n in _target_names(item.asname.name))
            block(stmt.body)

    block(fn.body)
    return names


# --- the checker -------------------------------------------------------------------------------------

_KINDS = {
    "If": "an `if` statement",
    "For": "a `for` loop",
    "While": "a `while` loop",
    "Try": "a `try` statement",
    "TryStar": "a `try` statement",
    "With": "a `with` statement",
    "Match": "a `match` statement",
    "AugAssign": "an augmented assignment",
    "Assert": "an `assert`",
    "Raise": "a `raise`",
    "Del": "a `del`",
    "Global": "a `global` statement",
    "Nonlocal": "a `nonlocal` statement",
    "Return": "a `return`",
    "TypeAlias": "a type alias",
}

# How a Name node is used, decided by its parent before the Name itself is visited.
_ATTR, _KEYWORD, _STORE, _ROOT, _CALLEE, _ATTR_BUILTIN, _ALL, _DEF = range(8)


class _Checker:
    """Collects (node, rule, message); :func:`validate` turns nodes into positions.

    Handlers follow libcst's naming (``visit_Name``, ``leave_ClassDef``, ``visit_FunctionDef_body``) but
    :meth:`walk` is a read-only traversal: libcst's own ``visit`` rebuilds every node, which would
    dominate the validation time.
    """

    def __init__(self, table: SurfaceTable, package: str | None) -> None:
        self.table = table
        self.package = package
        self.found: list[tuple[cst.CSTNode, str, str]] = []
        self.imports: dict[str, str] = {}  # module-level alias -> canonical dotted name
        self.module_names: set[str] = set()  # module-level names that are not imports
        self.rejected: set[str] = set()  # names whose import was rejected (reported once, at the import)
        self.file_scalars: set[str] = (
            set()
        )  # class attributes of the file set by a call (scalar declarations)
        self.scopes: list[set[str]] = []  # function, lambda and comprehension bindings, innermost last
        self.marks: dict[int, int] = {}  # id(node) -> how the parent uses it
        self.methods: dict[int, str] = {}  # id(FunctionDef) -> class name, for methods
        self.function_depth = 0
        self.class_depth = 0
        self.annotation_depth = 0

    def report(self, node: cst.CSTNode, rule: str, message: str) -> None:
        self.found.append((node, rule, message))

    def walk(self, node: cst.CSTNode) -> None:
        """Call ``visit_<Type>`` (False: skip the children), walk the children, call ``leave_<Type>``."""
        cls = type(node)
        handlers = _HANDLERS.get(cls)
        if handlers is None:
            handlers = _HANDLERS[cls] = _handlers(cls)
        visit, leave, body_field, fields = handlers
        if visit is not None and visit(self, node) is False:
            return
        for name in fields:
            value = getattr(node, name)
            if name == body_field:
                getattr(self, f"visit_{cls.__name__}_body")(node)
            if isinstance(value, cst.CSTNode):
                if not isinstance(value, _LAYOUT):
                    self.walk(value)
            elif isinstance(value, Sequence) and not isinstance(value, str):
                for item in value:
                    if isinstance(item, cst.CSTNode) and not isinstance(item, _LAYOUT):
                        self.walk(item)
            if name == body_field:
                getattr(self, f"leave_{cls.__name__}_body")(node)
        if leave is not None:
            leave(self, node)

    # --- module structure (a first pass over the top-level statements) --------------------------

    def check_module(self, module: cst.Module) -> None:
        classes: set[str] = set()
        for stmt in module.body:
            if isinstance(stmt, cst.ClassDef):
                self.file_scalars.update(_call_attributes(stmt))
        for stmt in module.body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    self._module_small(small)
            elif isinstance(stmt, cst.FunctionDef):
                self.module_names.add(stmt.name.value)
            elif isinstance(stmt, cst.ClassDef):
                self._class_header(stmt, classes)
                classes.add(stmt.name.value)
                self.module_names.add(stmt.name.value)
            else:
                self.report(
                    stmt,
                    "module-statement",
                    f"{_KINDS.get(type(stmt).__name__, 'this statement')} is not allowed at module level: "
                    "keep only imports, literal constants, functions and classes; move logic into methods",
                )
        if not classes:
            self.report(
                module,
                "no-recipe-class",
                f"the file defines no recipe class: define one deriving from {self.table.baseline} "
                f"(`class MyRecipe({self.table.baseline}):`)",
            )

    def _module_small(self, small: cst.BaseSmallStatement) -> None:
        if _is_docstring(small) or isinstance(small, cst.Pass):
            return
        if isinstance(small, cst.Import | cst.ImportFrom):
            self._import(small)
            return
        if isinstance(small, cst.Assign | cst.AnnAssign):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            is_all = [t.value for t in targets if isinstance(t, cst.Name)] == ["__all__"]
            if all(isinstance(t, cst.Name) for t in targets) and (
                small.value is None or _is_literal(small.value, mutable=is_all)
            ):
                for target in targets:
                    assert isinstance(target, cst.Name)
                    self.module_names.add(target.value)
                    if target.value == "__all__":
                        self.marks[id(target)] = _ALL
                return
            self.report(
                small,
                "module-statement",
                "a module-level assignment must bind a name to a plain literal (number, string, bool, None, "
                "or a tuple/list/dict of them): compute values inside methods",
            )
            return
        what = _KINDS.get(type(small).__name__, "this statement")
        if isinstance(small, cst.Expr):
            what = "a call" if isinstance(small.value, cst.Call) else "an expression statement"
        self.report(
            small,
            "module-statement",
            f"{what} is not allowed at module level: module code runs on import; move it into a method",
        )

    def _resolve_relative(self, node: cst.ImportFrom) -> str | None:
        level = len(node.relative)
        name = _dotted(node.module) if node.module is not None else None
        if level == 0:
            return name
        if self.package is None:
            self.report(
                node,
                "relative-import",
                "a relative import is not allowed in a candidate file: use absolute imports, "
                "e.g. `from afr.recipe import FedAvg, scalar`",
            )
            return None
        parts = self.package.split(".")
        if level - 1 >= len(parts):
            self.report(node, "relative-import", f"relative import beyond the top-level package {parts[0]!r}")
            return None
        base = ".".join(parts[: len(parts) - (level - 1)])
        return f"{base}.{name}" if name else base

    def _modules_text(self) -> str:
        # Submodules of a listed package are implied (afr.recipe._base…); keep the hint short.
        shown = sorted(
            m for m in self.table.allowed_imports if m.rpartition(".")[0] not in self.table.allowed_imports
        )
        return ", ".join(shown)

    def _canonical(self, module: str, name: str) -> str:
        """``afr.recipe._base.Params`` -> ``afr.recipe.Params``: one spelling per re-exported name."""
        parent = module.rpartition(".")[0]
        exported = self.table.allowed_imports.get(parent)
        if parent and exported is not None and name in exported:
            return f"{parent}.{name}"
        return f"{module}.{name}"

    def _import(self, node: cst.Import | cst.ImportFrom) -> None:
        allowed = self.table.allowed_imports
        if isinstance(node, cst.Import):
            for alias in node.names:
                module = _dotted(alias.name) or ""
                if allowed.get(module, frozenset()) is not None:
                    hint = (
                        f"use `from {module} import <name>` with a name the table lists for it"
                        if module in allowed
                        else f"a recipe may import only {self._modules_text()}"
                    )
                    self.report(alias, "import-not-allowed", f"`import {module}` is not allowed: {hint}")
                    continue
                if alias.asname is not None:
                    bound = alias.asname.name
                    assert isinstance(bound, cst.Name)
                    self.imports[bound.value] = module
                else:
                    root = module.partition(".")[0]
                    self.imports[root] = root
            return
        if not isinstance(node.names, cst.ImportStar):
            self.rejected.update(_bound_name(alias) for alias in node.names)  # until accepted below
        module = self._resolve_relative(node)
        if module is None:
            return
        if module not in allowed:
            self.report(
                node.module if node.module is not None else node,
                "import-not-allowed",
                f"module {module!r} may not be imported: a recipe may import only {self._modules_text()}",
            )
            return
        names = allowed[module]
        if isinstance(node.names, cst.ImportStar):
            self.report(
                node.names, "import-star", f"`from {module} import *` is not allowed: import names one by one"
            )
            return
        for alias in node.names:
            name = _dotted(alias.name) or ""
            if module == "__future__":
                if name not in (names or ()):
                    self.report(
                        alias, "import-name-not-allowed", f"`from __future__ import {name}` is not allowed"
                    )
                continue
            qualified = f"{module}.{name}"
            ok = (
                name in names
                if names is not None
                else qualified in self.table.modules or self.table.value_allowed(qualified)
            )
            if not ok:
                listed = ", ".join(sorted(names)) if names is not None else "the allowed calls and values"
                self.report(
                    alias,
                    "import-name-not-allowed",
                    f"{name!r} may not be imported from {module!r}: import one of {listed}",
                )
                continue
            self.rejected.discard(_bound_name(alias))
            self.imports[_bound_name(alias)] = self._canonical(module, name)

    def _class_header(self, node: cst.ClassDef, earlier: set[str]) -> None:
        bases = self.table.recipe_bases
        fix = f"derive from one of {', '.join(bases)} (imported from afr.recipe) or from an earlier class"
        for decorator in node.decorators:
            self.report(decorator, "class-decorator", "a recipe class takes no decorators: remove it")
        if node.keywords:
            self.report(
                node.keywords[0], "class-base", f"class keywords (metaclass=…) are not allowed: {fix}"
            )
        if len(node.bases) != 1 or node.bases[0].star:
            where = node.bases[1] if len(node.bases) > 1 else node.name
            self.report(where, "class-base", f"class {node.name.value!r} must have exactly one base: {fix}")
            return
        base = node.bases[0].value
        if isinstance(base, cst.Name):
            if base.value in earlier or base.value in self.rejected:
                return
            qualified = self.imports.get(base.value, "")
            if qualified.startswith(f"{RECIPE_PACKAGE}.") and qualified.rpartition(".")[2] in bases:
                return
            # The baseline itself derives from Recipe; only its own file in afr.recipe may do so.
            if (
                qualified == f"{RECIPE_PACKAGE}.Recipe"
                and self.package == RECIPE_PACKAGE
                and node.name.value == self.table.baseline
            ):
                return
        shown = _dotted(base) or "an expression"
        if isinstance(base, cst.Name) and base.value not in self.imports:
            shown += ", which is neither imported from afr.recipe nor a class defined above"
        self.report(base, "class-base", f"class {node.name.value!r} may not derive from {shown}: {fix}")

    # --- scopes -----------------------------------------------------------------------------------

    def _is_local(self, name: str) -> bool:
        return any(name in scope for scope in self.scopes)

    def _resolve(self, name: str) -> tuple[str, str]:
        """(kind, canonical) with kind one of local, import, builtin, unknown."""
        if self._is_local(name):
            return "local", name
        if name in self.imports:
            return "import", self.imports[name]
        if name in self.module_names:
            return "local", name
        if name in BUILTIN_NAMES:
            return "builtin", name
        return "unknown", name

    # --- classes and functions ---------------------------------------------------------------------

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        if self.class_depth or self.function_depth:
            self.report(node.name, "nested-class", "classes may only be defined at module level: move it out")
        self.marks[id(node.name)] = _STORE
        self.class_depth += 1
        for stmt in _statements(node.body):
            if isinstance(stmt, cst.FunctionDef):
                self.methods[id(stmt)] = node.name.value
            elif isinstance(stmt, cst.SimpleStatementLine | cst.BaseSmallStatement):
                for small in stmt.body if isinstance(stmt, cst.SimpleStatementLine) else [stmt]:
                    self._class_small(small)
            elif not isinstance(stmt, cst.ClassDef):
                self.report(
                    stmt,
                    "class-statement",
                    f"{_KINDS.get(type(stmt).__name__, 'this statement')} is not allowed in a class body: "
                    "keep logic inside methods",
                )
        return True

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self.class_depth -= 1

    def _class_small(self, small: cst.BaseSmallStatement) -> None:
        if _is_docstring(small) or isinstance(small, cst.Pass | cst.Import | cst.ImportFrom):
            return  # imports are reported by visit_Import*
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Ellipsis):
            return
        if isinstance(small, cst.Assign | cst.AnnAssign):
            targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
            if len(targets) == 1 and isinstance(targets[0], cst.Name):
                self._class_assign(targets[0], small.value)
                return
        self.report(
            small,
            "class-statement",
            'a class body may only hold `name = "..."`, scalar declarations (`x = scalar(...)`), '
            "literal constants and methods",
        )

    def _class_assign(self, target: cst.Name, value: cst.BaseExpression | None) -> None:
        name = target.value
        table = self.table
        if name == "name":
            if not isinstance(value, cst.SimpleString):
                self.report(
                    target, "reserved-name", '`name` must be a plain string literal, e.g. name = "my_recipe"'
                )
            return
        if name.startswith("__") and name.endswith("__"):
            self.marks[id(target)] = _DEF
            self.report(
                target,
                "reserved-name",
                f"class attribute {name!r} is not allowed: dunder attributes "
                "change how the class works; use a plain name",
            )
            return
        if name in table.reserved_names:
            self.report(
                target,
                "reserved-name",
                f"{name!r} is Recipe machinery and may not be redefined: choose another name",
            )
            return
        if name in table.hooks:
            self.report(
                target,
                "reserved-name",
                f"hook {name!r} may only be defined as a method `def {name}({', '.join(table.hooks[name])})`",
            )
            return
        if value is None or _is_literal(value):
            return
        if isinstance(value, cst.Call) and isinstance(value.func, cst.Name):
            kind, qualified = self._resolve(value.func.value)
            if kind == "import" and qualified == "afr.recipe.scalar":
                self._scalar(target, value)
                return
        self.report(
            value,
            "class-statement",
            f"class attribute {name!r} must be a plain literal or a scalar declaration "
            f"(`{name} = scalar(default, low, high)`): compute values inside methods",
        )

    def _scalar(self, target: cst.Name, call: cst.Call) -> None:
        usage = "scalar(default, low, high, log=False, integer=False) with number and bool literals"
        order = ("default", "low", "high")
        values: dict[str, float | bool] = {}
        for i, arg in enumerate(call.args):
            if arg.star:
                self.report(arg, "scalar-declaration", f"no *args/**kwargs in a scalar declaration: {usage}")
                return
            key = arg.keyword.value if arg.keyword is not None else (order[i] if i < len(order) else "?")
            if key in ("log", "integer"):
                if not (isinstance(arg.value, cst.Name) and arg.value.value in ("True", "False")):
                    self.report(arg.value, "scalar-declaration", f"{key}= must be True or False: {usage}")
                    return
                values[key] = arg.value.value == "True"
            elif key in order:
                number = _number(arg.value)
                if number is None:
                    self.report(arg.value, "scalar-declaration", f"{key} must be a number literal: {usage}")
                    return
                values[key] = number
            else:
                self.report(
                    arg, "scalar-declaration", f"unexpected argument in a scalar declaration: {usage}"
                )
                return
        missing = [k for k in order if k not in values]
        if missing:
            self.report(call, "scalar-declaration", f"missing {', '.join(missing)}: {usage}")
            return
        default, low, high = (float(values[k]) for k in order)
        if not low <= default <= high:
            self.report(
                call,
                "scalar-declaration",
                f"scalar {target.value!r} needs low <= default <= high, "
                f"got {low:g} <= {default:g} <= {high:g}",
            )
        elif values.get("log") and low <= 0:
            self.report(
                call, "scalar-declaration", f"scalar {target.value!r} is log-scaled and needs low > 0"
            )

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        name = node.name.value
        self.marks[id(node.name)] = _DEF  # a dunder name is reported as dunder-def, not forbidden-name
        if node.asynchronous is not None:
            self.report(node, "async", "async functions are not allowed: use a plain def")
        if name.startswith("__") and name.endswith("__"):
            self.report(
                node.name,
                "dunder-def",
                f"{name!r} may not be defined: dunder methods change how "
                "the class or module works; override a hook or write a helper with a plain name",
            )
        for decorator in node.decorators:
            if not (
                isinstance(decorator.decorator, cst.Name) and decorator.decorator.value == "staticmethod"
            ):
                self.report(
                    decorator,
                    "decorator",
                    "only @staticmethod is allowed as a decorator: remove it "
                    "(use `with torch.no_grad():` inside the body instead of @torch.no_grad())",
                )
        owner = self.methods.get(id(node))
        if owner is not None:
            self._method(node, owner)
        return True

    # Defaults and annotations belong to the enclosing scope: the function's own scope opens at its body.
    def visit_FunctionDef_body(self, node: cst.FunctionDef) -> None:
        self.function_depth += 1
        self.scopes.append(_bindings(node))

    def leave_FunctionDef_body(self, node: cst.FunctionDef) -> None:
        self.function_depth -= 1
        self.scopes.pop()

    def _method(self, node: cst.FunctionDef, owner: str) -> None:
        name = node.name.value
        table = self.table
        if name in table.frozen_hooks:
            self.report(
                node.name,
                "frozen-hook",
                f"hook {name!r} may not be overridden on profile "
                f"{table.profile!r}: mutable hooks are {', '.join(table.mutable_hooks)}",
            )
        elif name in table.mutable_hooks:
            expected = table.mutable_hooks[name]
            got = _param_names(node.params)
            if got != expected:
                self.report(
                    node.params if got else node.name,
                    "hook-signature",
                    f"hook {name!r} must take exactly ({', '.join(expected)}), got ({', '.join(got)}): "
                    "keep the hook's parameter names and order (annotations are free)",
                )
            if node.decorators:
                self.report(
                    node.name,
                    "hook-signature",
                    f"hook {name!r} must be a plain method: remove its decorators",
                )
        elif name in table.reserved_names:
            self.report(
                node.name,
                "reserved-name",
                f"{name!r} is Recipe machinery and may not be overridden: choose another name for a helper",
            )

    def visit_Lambda_body(self, node: cst.Lambda) -> None:
        self.scopes.append({n.lstrip("*") for n in _param_names(node.params)})

    def leave_Lambda_body(self, node: cst.Lambda) -> None:
        self.scopes.pop()

    def _comprehension(self, node: cst.ListComp | cst.SetComp | cst.DictComp | cst.GeneratorExp) -> bool:
        names: set[str] = set()
        comp: cst.CompFor | None = node.for_in
        while comp is not None:
            if comp.asynchronous is not None:
                self.report(comp, "async", "`async for` is not allowed")
            names.update(n.value for n in _target_names(comp.target))
            self._store_attributes(comp.target)
            for n in _target_names(comp.target):
                self.marks[id(n)] = _STORE
            comp = comp.inner_for_in
        self.scopes.append(names)
        return True

    def _leave_comprehension(self) -> None:
        self.scopes.pop()

    def visit_ListComp(self, node: cst.ListComp) -> bool:
        return self._comprehension(node)

    def leave_ListComp(self, original_node: cst.ListComp) -> None:
        self._leave_comprehension()

    def visit_SetComp(self, node: cst.SetComp) -> bool:
        return self._comprehension(node)

    def leave_SetComp(self, original_node: cst.SetComp) -> None:
        self._leave_comprehension()

    def visit_DictComp(self, node: cst.DictComp) -> bool:
        return self._comprehension(node)

    def leave_DictComp(self, original_node: cst.DictComp) -> None:
        self._leave_comprehension()

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> bool:
        return self._comprehension(node)

    def leave_GeneratorExp(self, original_node: cst.GeneratorExp) -> None:
        self._leave_comprehension()

    def visit_Annotation(self, node: cst.Annotation) -> bool:
        self.annotation_depth += 1
        stack: list[cst.CSTNode] = [node.annotation]
        while stack:
            part = stack.pop()
            if isinstance(part, cst.Subscript):
                stack.append(part.value)
                stack.extend(e.slice.value for e in part.slice if isinstance(e.slice, cst.Index))
            elif isinstance(part, cst.BinaryOperation) and isinstance(part.operator, cst.BitOr):
                stack.extend((part.left, part.right))
            elif isinstance(part, cst.Tuple | cst.List):
                stack.extend(e.value for e in part.elements)
            elif isinstance(part, cst.Attribute):
                stack.append(part.value)
            elif not (isinstance(part, cst.Name | cst.SimpleString | cst.Ellipsis) or _is_literal(part)):
                self.report(
                    part,
                    "annotation",
                    "annotations may only name types (names, attributes, subscripts, `|`, literals): "
                    "they are evaluated on import",
                )
        return True

    def leave_Annotation(self, original_node: cst.Annotation) -> None:
        self.annotation_depth -= 1

    # --- statements ----------------------------------------------------------------------------------

    def visit_Import(self, node: cst.Import) -> bool:
        if self.function_depth or self.class_depth:
            self.report(node, "nested-import", "imports are only allowed at module level: move it to the top")
        return False

    def visit_ImportFrom(self, node: cst.ImportFrom) -> bool:
        if self.function_depth or self.class_depth:
            self.report(node, "nested-import", "imports are only allowed at module level: move it to the top")
        return False

    def visit_Global(self, node: cst.Global) -> bool:
        self.report(
            node,
            "global-statement",
            "`global` is not allowed: keep state in server_state, ctx.client_state or on self",
        )
        return False

    def visit_Nonlocal(self, node: cst.Nonlocal) -> bool:
        self.report(node, "global-statement", "`nonlocal` is not allowed: return values instead")
        return False

    def visit_Await(self, node: cst.Await) -> None:
        self.report(node, "async", "`await` is not allowed")

    def visit_Yield(self, node: cst.Yield) -> None:
        self.report(node, "yield", "generators are not allowed: build and return a list instead")

    def visit_For(self, node: cst.For) -> None:
        if node.asynchronous is not None:
            self.report(node, "async", "`async for` is not allowed")
        for name in _target_names(node.target):
            self.marks[id(name)] = _STORE
        self._store_attributes(node.target)

    def visit_With(self, node: cst.With) -> None:
        if node.asynchronous is not None:
            self.report(node, "async", "`async with` is not allowed")
        allowed = self.table.allowed_context_managers
        for item in node.items:
            ok = False
            if isinstance(item.item, cst.Call):
                dotted = _dotted(item.item.func)
                if dotted is not None:
                    head, _, rest = dotted.partition(".")
                    kind, qualified = self._resolve(head)
                    ok = kind == "import" and (f"{qualified}.{rest}" if rest else qualified) in allowed
            if not ok:
                self.report(
                    item.item,
                    "with-not-allowed",
                    f"`with` is only allowed on {', '.join(f'{m}()' for m in sorted(allowed))}",
                )
            if item.asname is not None:
                for name in _target_names(item.asname.name):
                    self.marks[id(name)] = _STORE
                self._store_attributes(item.asname.name)

    def visit_Del(self, node: cst.Del) -> None:
        targets = [node.target]
        while targets:
            target = targets.pop()
            if isinstance(target, cst.Attribute):
                self.report(
                    target,
                    "del-attribute",
                    "deleting an attribute is not allowed: set it to None or pop a dict key instead",
                )
            elif isinstance(target, cst.Tuple | cst.List):
                targets.extend(e.value for e in target.elements)

    def visit_ExceptHandler(self, node: cst.ExceptHandler) -> None:
        if node.type is None:
            self.report(
                node,
                "bare-except",
                "a bare `except:` is not allowed: catch a specific exception, e.g. `except ValueError:`",
            )
        if node.name is not None:
            for name in _target_names(node.name.name):
                self.marks[id(name)] = _STORE

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        for name in _target_names(node.target):
            self.marks.setdefault(id(name), _STORE)
        self._store_attributes(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        for name in _target_names(node.target):
            self.marks.setdefault(id(name), _STORE)
        self._store_attributes(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        for name in _target_names(node.target):
            self.marks[id(name)] = _STORE
        self._store_attributes(node.target)

    def _store_attributes(self, target: cst.BaseExpression) -> None:
        """Assigned attributes: only on ``self``, and not a hook, Recipe machinery or a declared scalar."""
        stack = [target]
        while stack:
            node = stack.pop()
            if isinstance(node, cst.Tuple | cst.List):
                stack.extend(e.value for e in node.elements)
            elif isinstance(node, cst.StarredElement):
                stack.append(node.value)
            elif isinstance(node, cst.Attribute):
                self._check_store(node, node.value, node.attr.value)

    def _check_store(self, where: cst.CSTNode, obj: cst.BaseExpression, attr: str) -> None:
        # Every object a hook can reach is shared: `self` by the server and all clients, modules and
        # classes by the engine. Assigning attributes would open a channel outside the contract.
        self.report(
            where,
            "attribute-assignment",
            f"attribute {attr!r} may not be assigned: recipe state lives only in server_state (server "
            "hooks) and ctx.client_state (client hooks); attributes on self or any other object would be "
            "shared outside the communication contract",
        )

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        for name in _target_names(node.target):
            self.marks[id(name)] = _STORE

    def visit_Param(self, node: cst.Param) -> None:
        self.marks[id(node.name)] = _STORE
        if node.default is not None and not _is_literal(node.default):
            self.report(
                node.default,
                "default-value",
                "a parameter default must be a plain literal (it is evaluated on import): "
                "default to None and compute the value in the body",
            )

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.marks[id(node.keyword)] = _KEYWORD

    # --- strings -------------------------------------------------------------------------------------

    def _long_string(self, node: cst.CSTNode, length: int) -> None:
        if length > self.table.max_string:
            self.report(
                node,
                "long-string",
                f"a string literal of {length} characters is over the limit of "
                f"{self.table.max_string}: recipes need no embedded data",
            )

    def visit_SimpleString(self, node: cst.SimpleString) -> None:
        self._long_string(node, len(node.raw_value))

    def visit_FormattedString(self, node: cst.FormattedString) -> None:
        length = sum(len(p.value) for p in node.parts if isinstance(p, cst.FormattedStringText))
        self._long_string(node, length)

    def visit_ConcatenatedString(self, node: cst.ConcatenatedString) -> bool:
        if self.marks.get(id(node)) == _ATTR:  # an inner part of a longer concatenation
            return True
        total, stack = 0, [node]
        while stack:
            part = stack.pop()
            if isinstance(part, cst.ConcatenatedString):
                self.marks[id(part)] = _ATTR
                stack.extend((part.left, part.right))
            elif isinstance(part, cst.SimpleString):
                total += len(part.raw_value)
            elif isinstance(part, cst.FormattedString):
                total += sum(len(p.value) for p in part.parts if isinstance(p, cst.FormattedStringText))
        if total > self.table.max_string and not any(
            len(p.raw_value) > self.table.max_string for p in _simple_parts(node)
        ):
            self._long_string(node, total)
        return True

    # --- names, attributes, calls ---------------------------------------------------------------------

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Name) and func.value in ATTRIBUTE_BUILTINS and not self._is_local(func.value):
            self.marks[id(func)] = _ATTR_BUILTIN
            self._attribute_builtin(node, func.value)
        elif isinstance(func, cst.Name | cst.Attribute):
            self.marks.setdefault(id(func), _CALLEE)

    def _attribute_builtin(self, node: cst.Call, name: str) -> None:
        attr = node.args[1].value if len(node.args) > 1 and not node.args[1].star else None
        if (
            not isinstance(attr, cst.SimpleString)
            or "\\" in attr.value
            or attr.prefix.lower() not in ("", "u")
        ):
            self.report(
                attr or node,
                "dynamic-attribute",
                f"{name}() needs a string literal as its attribute "
                f'name, e.g. {name}(obj, "lr"): computed attribute names are not allowed',
            )
            return
        value = attr.raw_value
        if not value.isidentifier() or not self.table.attribute_allowed(value):
            self.report(
                attr,
                "forbidden-attribute",
                f"attribute {value!r} is not allowed: {self._attribute_reason(value)}",
            )
        elif name == "setattr":
            self._check_store(node, node.args[0].value, value)
        elif name == "delattr":
            self.report(node, "del-attribute", "deleting an attribute is not allowed: set it to None instead")

    def _attribute_reason(self, attr: str) -> str:
        if attr.startswith("_"):
            return "private and dunder attributes reach interpreter internals; use the object's public API"
        if attr.startswith("register_"):
            return "hooks on tensors and modules run outside the recipe's hooks; write the logic in a hook"
        return (
            "it bypasses autograd, touches storage, files or interpreter internals; "
            "use ordinary tensor operations (e.g. `with torch.no_grad(): p.add_(...)`)"
        )

    def visit_Attribute(self, node: cst.Attribute) -> None:
        attr = node.attr.value
        self.marks[id(node.attr)] = _ATTR
        if not self.table.attribute_allowed(attr):
            self.report(
                node.attr,
                "forbidden-attribute",
                f"attribute {attr!r} is not allowed: {self._attribute_reason(attr)}",
            )
        if self.marks.get(id(node)) == _ATTR:  # an inner link of a chain already checked
            return
        root, inner = _chain_root(node)
        if root is None:
            return
        for link in inner:
            self.marks[id(link)] = _ATTR
        usage = self.marks.get(id(node))
        self.marks[id(root)] = _ROOT
        kind, qualified = self._resolve(root.value)
        if kind == "builtin":
            if not self.table.value_allowed(root.value) and root.value not in self.table.forbidden_names:
                self.report(
                    root,
                    "reference-not-allowed",
                    f"builtin {root.value!r} is not on the allow-list: use an allowed builtin",
                )
            return
        if kind != "import" or qualified not in self.table.modules:
            return  # an attribute of an object, not of a module
        dotted = _dotted(node)
        assert dotted is not None
        full = qualified + dotted[len(root.value) :]
        if usage == _CALLEE:
            if not self.table.call_allowed(full):
                self.report(
                    node,
                    "call-not-allowed",
                    f"{full}() is not on the allowed calls: use an allowed operation (see docs/surface.md)",
                )
        elif not self.annotation_depth and not self.table.value_allowed(full):
            what = "a module" if full in self.table.modules else "not an allowed value"
            self.report(
                node,
                "reference-not-allowed",
                f"{full} is {what}: module attributes are used only "
                "as allowed calls, dtypes and constants (see docs/surface.md)",
            )

    def visit_Name(self, node: cst.Name) -> None:
        if not node.value.isascii():
            self.report(
                node,
                "non-ascii-name",
                f"identifier {node.value!r} is not ASCII: Python folds "
                "look-alike letters into other names; use ASCII letters",
            )
            return
        usage = self.marks.get(id(node))
        if usage in (_ATTR, _KEYWORD):
            return
        name = node.value
        if usage == _ATTR_BUILTIN:
            return
        if name in self.table.forbidden_names:
            self.report(
                node,
                "forbidden-name",
                f"{name!r} is not allowed: it reaches code, files or interpreter internals; "
                "remove it (hooks receive everything a recipe may use as arguments)",
            )
            return
        if name.startswith("__") and name.endswith("__") and usage not in (_ALL, _DEF):
            self.report(
                node,
                "forbidden-name",
                f"dunder name {name!r} is not allowed: it reaches interpreter internals; use plain names",
            )
            return
        if usage in (_STORE, _ROOT, _ALL, _DEF) or self.annotation_depth:
            return
        kind, qualified = self._resolve(name)
        if kind == "import":
            if qualified in self.table.modules:
                self.report(
                    node,
                    "reference-not-allowed",
                    f"module {qualified!r} may only be used through its "
                    f"attributes, e.g. {name}.<allowed op>(...)",
                )
            elif usage == _CALLEE and not self.table.call_allowed(qualified):
                self.report(
                    node,
                    "call-not-allowed",
                    f"{qualified}() is not on the allowed calls: use an "
                    "allowed operation (see docs/surface.md)",
                )
        elif kind == "builtin":
            if usage == _CALLEE and not self.table.call_allowed(name):
                self.report(
                    node,
                    "call-not-allowed",
                    f"builtin {name}() is not on the allowed calls: use "
                    "an allowed builtin (see docs/surface.md)",
                )
            elif usage != _CALLEE and not self.table.value_allowed(name):
                self.report(
                    node,
                    "reference-not-allowed",
                    f"builtin {name!r} is not on the allow-list: "
                    "use an allowed builtin (see docs/surface.md)",
                )


# Whitespace, punctuation and operator tokens: nothing to check inside them.
_LAYOUT = (
    cst.BaseParenthesizableWhitespace,
    cst.EmptyLine,
    cst.TrailingWhitespace,
    cst.Newline,
    cst.Comment,
    cst.Comma,
    cst.Dot,
    cst.Colon,
    cst.Semicolon,
    cst.AssignEqual,
    cst.LeftParen,
    cst.RightParen,
    cst.LeftSquareBracket,
    cst.RightSquareBracket,
    cst.LeftCurlyBrace,
    cst.RightCurlyBrace,
    cst.BaseBinaryOp,
    cst.BaseBooleanOp,
    cst.BaseCompOp,
    cst.BaseUnaryOp,
    cst.BaseAugOp,
    cst.ImportStar,
)
_Handlers = tuple[Callable[..., Any] | None, Callable[..., Any] | None, str | None, tuple[str, ...]]
_HANDLERS: dict[type, _Handlers] = {}


def _handlers(cls: type) -> _Handlers:
    visit = getattr(_Checker, f"visit_{cls.__name__}", None)
    leave = getattr(_Checker, f"leave_{cls.__name__}", None)
    body = "body" if hasattr(_Checker, f"visit_{cls.__name__}_body") else None
    fields = tuple(
        f.name for f in dataclasses.fields(cls) if not f.name.startswith(("whitespace", "lpar", "rpar"))
    )
    return visit, leave, body, fields


def _simple_parts(node: cst.ConcatenatedString) -> Iterator[cst.SimpleString]:
    for part in (node.left, node.right):
        if isinstance(part, cst.SimpleString):
            yield part
        elif isinstance(part, cst.ConcatenatedString):
            yield from _simple_parts(part)
