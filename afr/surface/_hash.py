"""A hash of a candidate's code that ignores comments, formatting, docstrings and the names of its own
classes, parameters and local variables (alpha-renaming).

Two files hash equal when one is the other with its module-level classes, function parameters and local
variables consistently renamed (per scope). Names that can change what the code does stay as written:
attributes (the baseline API, hooks, declared scalars — all attributes or class-body names), module-level
functions, variables and imports, names bound by an import anywhere, keyword arguments at call sites, and
any parameter that a call names by keyword or that a string of the file spells (``getattr``/``**kwargs``
style access). A file that reaches its own namespace by name (``locals``, ``vars``, ``globals``, ``eval``,
``exec``, ``__import__``) is hashed without renaming.

The hash is versioned (``v2:<sha256>``). Ledgers written before renaming was ignored hold the legacy hash
(:func:`legacy_ast_hash`, plain hex); the campaign matches a new candidate against those too.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterator

from afr._parsing import parse_python

__all__ = ["HASH_VERSION", "normalized_ast_hash", "legacy_ast_hash", "is_legacy_hash"]

HASH_VERSION = "v2"
"""Prefix of :func:`normalized_ast_hash`; a hash without one is the legacy (``v1``) hash."""

_WITH_DOCSTRING = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_NAMED = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.ExceptHandler,
    ast.MatchAs,
    ast.MatchStar,
)
_REFLECTIVE = frozenset({"locals", "vars", "globals", "eval", "exec", "__import__"})


def normalized_ast_hash(source: str) -> str:
    """``v2:`` + sha256 (hex) of the source's AST without docstrings or positions, alpha-renamed.

    Two files differing only in comments, whitespace, line breaks, docstrings or the names of their own
    classes, parameters and local variables hash equal. Raises :class:`SyntaxError` if ``source`` does
    not parse.
    """
    tree = _without_docstrings(parse_python(source))
    _AlphaRenamer(tree).rename()
    dump = ast.dump(tree, annotate_fields=True, include_attributes=False)
    return f"{HASH_VERSION}:" + hashlib.sha256(dump.encode("utf-8")).hexdigest()


def legacy_ast_hash(source: str) -> str:
    """The hash ledgers stored before renaming was ignored: sha256 (hex) modulo comments, formatting and
    docstrings only (kept so that a resumed campaign still recognises copies of its earlier candidates)."""
    tree = _without_docstrings(parse_python(source))
    dump = ast.dump(tree, annotate_fields=True, include_attributes=False)
    return hashlib.sha256(dump.encode("utf-8")).hexdigest()


def is_legacy_hash(value: str) -> bool:
    """True for a legacy (unversioned) normalised hash: 64 hex digits."""
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        if isinstance(node, _WITH_DOCSTRING) and node.body and _is_docstring(node.body[0]):
            # A body of only a docstring means `pass`: keep it a valid, comparable body.
            node.body = node.body[1:] or [ast.Pass()]
    return tree


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


class _Scope:
    """A function, lambda or comprehension scope: its renamable locals and their canonical names."""

    def __init__(self, parent: _Scope | None, depth: int, locals_: list[str], keep: set[str]) -> None:
        self.parent = parent
        # Canonical names carry the depth: a free variable of an inner scope (the outer's name) never
        # equals one of the inner scope's own names. They are not identifiers, so never a real name either.
        self.names = {name: f"·{depth}.{i}" for i, name in enumerate(n for n in locals_ if n not in keep)}
        self.bound = set(locals_)


class _AlphaRenamer:
    """Renames, in place, module-level classes and every function scope's parameters and locals."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        self.enabled = not (names & _REFLECTIVE)
        # A parameter a call names by keyword, or a string spells, is part of an interface: keep its name.
        self.pinned: set[str] = set()
        self.no_params = False
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword):
                if node.arg is None:
                    self.no_params = True  # f(**mapping): any parameter may be named by a string
                else:
                    self.pinned.add(node.arg)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                self.pinned.add(node.value)
        self.classes: dict[str, str] = {}

    def rename(self) -> None:
        if not self.enabled:
            return
        top = self.tree.body
        bound_otherwise = set(_module_bindings(top))
        # a `global` statement anywhere lets a function rebind the name at module level
        bound_otherwise.update(
            n for node in ast.walk(self.tree) if isinstance(node, ast.Global) for n in node.names
        )
        class_names = [s.name for s in top if isinstance(s, ast.ClassDef)]
        for name in class_names:
            if name not in bound_otherwise | self.pinned and class_names.count(name) == 1:
                self.classes[name] = f"·C{len(self.classes)}"
        for stmt in top:
            if isinstance(stmt, ast.ClassDef) and stmt.name in self.classes:
                stmt.name = self.classes[stmt.name]
            self._visit(stmt, None)

    # --- resolution --------------------------------------------------------------------------------------

    def _resolve(self, name: str, scope: _Scope | None) -> str:
        while scope is not None:
            if name in scope.bound:
                return scope.names.get(name, name)
            scope = scope.parent
        return self.classes.get(name, name)

    # --- traversal ---------------------------------------------------------------------------------------

    def _visit(self, node: ast.AST, scope: _Scope | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self._bind_def_name(node, scope)
            for decorator in node.decorator_list:
                self._visit(decorator, scope)
            self._visit_signature(node.args, scope)
            if node.returns is not None:
                self._visit(node.returns, scope)
            self._visit_function(node, node.args, node.body, scope)
            return
        if isinstance(node, ast.Lambda):
            self._visit_signature(node.args, scope)
            self._visit_function(node, node.args, [node.body], scope)
            return
        if isinstance(node, ast.ClassDef):
            self._bind_def_name(node, scope)
            for child in (*node.decorator_list, *node.bases, *node.keywords):
                self._visit(child, scope)
            # A class body's names are attributes (hooks, scalars): never renamed. Its methods see the
            # enclosing function scope, not the class body.
            attributes = _function_bindings(node.body)[0]
            body = _Scope(scope, _depth(scope) + 1, attributes, set(attributes))
            for stmt in node.body:
                self._visit_class_stmt(stmt, scope, body)
            return
        if isinstance(node, _COMPREHENSIONS):
            self._visit_comprehension(node, scope)
            return
        if isinstance(node, ast.Name):
            node.id = self._resolve(node.id, scope)
            return
        if isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            node.name = self._resolve(node.name, scope)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            node.rest = self._resolve(node.rest, scope)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            node.names = [self._resolve(n, scope) for n in node.names]
        for child in ast.iter_child_nodes(node):
            self._visit(child, scope)

    def _visit_class_stmt(self, stmt: ast.stmt, scope: _Scope | None, body: _Scope) -> None:
        """A class body statement: the names the body binds are attributes and stay (``body``: a scope that
        keeps them); methods and nested classes see the enclosing scope, not the class body."""
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = stmt.name
            self._visit(stmt, scope)
            stmt.name = name  # a method or nested class name is an attribute
            return
        self._visit(stmt, body)

    def _bind_def_name(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, scope) -> None:
        if scope is not None:
            node.name = self._resolve(node.name, scope)

    def _visit_signature(self, args: ast.arguments, scope: _Scope | None) -> None:
        """Defaults and annotations are evaluated in the enclosing scope."""
        for default in (*args.defaults, *(d for d in args.kw_defaults if d is not None)):
            self._visit(default, scope)
        for arg in _all_args(args):
            if arg.annotation is not None:
                self._visit(arg.annotation, scope)

    def _visit_function(self, node: ast.AST, args: ast.arguments, body: list, scope: _Scope | None) -> None:
        params = [a.arg for a in _all_args(args)]
        keep = {a.arg for a in args.kwonlyargs}  # always called by name
        if self.no_params:
            keep.update(params)
        keep.update(p for p in params if p in self.pinned)
        local_names, imported, declared = _function_bindings(body)
        keep.update(imported)
        ordered = list(dict.fromkeys([*params, *(n for n in local_names if n not in declared)]))
        inner = _Scope(scope, _depth(scope) + 1, ordered, keep)
        for arg in _all_args(args):
            arg.arg = inner.names.get(arg.arg, arg.arg)
        for stmt in body:
            self._visit(stmt, inner)

    def _visit_comprehension(self, node: ast.AST, scope: _Scope | None) -> None:
        generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
        targets: list[str] = []
        for gen in generators:
            targets.extend(n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name))
        # The first iterable is evaluated in the enclosing scope; everything else in the comprehension's.
        self._visit(generators[0].iter, scope)
        inner = _Scope(scope, _depth(scope) + 1, list(dict.fromkeys(targets)), set())
        for i, gen in enumerate(generators):
            self._visit(gen.target, inner)
            if i:
                self._visit(gen.iter, inner)
            for cond in gen.ifs:
                self._visit(cond, inner)
        for field in ("elt", "key", "value"):
            child = getattr(node, field, None)
            if child is not None:
                self._visit(child, inner)


def _depth(scope: _Scope | None) -> int:
    depth = 0
    while scope is not None:
        depth, scope = depth + 1, scope.parent
    return depth


def _all_args(args: ast.arguments) -> list[ast.arg]:
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *extra, *args.kwonlyargs]


def _walk_scope(nodes: list) -> Iterator[ast.AST]:
    """Every node of these statements that belongs to their scope (not inside a nested def, lambda, class
    body or comprehension, though a nested def's or class's own name does belong)."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (*_FUNCTIONS, ast.ClassDef, *_COMPREHENSIONS)):
            if isinstance(node, _COMPREHENSIONS):
                # walrus targets inside a comprehension bind in the enclosing function
                stack.extend(n for n in ast.walk(node) if isinstance(n, ast.NamedExpr))
            continue
        stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _function_bindings(body: list) -> tuple[list[str], set[str], set[str]]:
    """(names bound in this scope in order of appearance, names bound by an import, global/nonlocal names)."""
    bound: list[str] = []
    imported: set[str] = set()
    declared: set[str] = set()
    for node in _walk_scope(body):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            bound.append(node.id)
        elif isinstance(node, _NAMED) and node.name:
            bound.append(node.name)  # a nested def or class, an `except ... as`, a match capture
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.append(node.rest)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                name = (alias.asname or alias.name).partition(".")[0]
                bound.append(name)
                imported.add(name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            declared.update(node.names)
    return bound, imported, declared


def _module_bindings(body: list) -> Iterator[str]:
    """Names the module's top level binds other than by ``class``."""
    for node in _walk_scope(body):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            yield node.id
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name
        elif isinstance(node, ast.Import | ast.ImportFrom):
            yield from ((a.asname or a.name).partition(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            yield node.name
