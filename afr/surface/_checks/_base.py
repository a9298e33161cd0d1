"""The state every check family shares: the table, what was found, scopes, how each name is used."""

from __future__ import annotations

import libcst as cst

from .._table import BUILTIN_NAMES, SurfaceTable

__all__ = [
    "CheckerBase",
    "USE_ATTR",
    "USE_KEYWORD",
    "USE_STORE",
    "USE_ROOT",
    "USE_CALLEE",
    "USE_ATTR_BUILTIN",
    "USE_ALL",
    "USE_DEF",
    "USE_INERT",
]


# How a Name node is used, decided by its parent before the Name itself is visited.
USE_ATTR, USE_KEYWORD, USE_STORE, USE_ROOT, USE_CALLEE, USE_ATTR_BUILTIN, USE_ALL, USE_DEF = range(8)
# A value read where it can never be called: an isinstance() type argument or a comparison operand.
USE_INERT = 8


class CheckerBase:
    """Collects (node, rule, message); :func:`~afr.surface.validate` turns nodes into positions.

    Each rule family is a mixin over this state and :class:`~afr.surface._checks.Checker` composes
    them, so a family may call another family's methods. Name resolution and the attribute-assignment
    rule live here because several families need them.
    """

    def __init__(self, table: SurfaceTable, package: str | None) -> None:
        self.table = table
        self.package = package
        self.found: list[tuple[cst.CSTNode, str, str]] = []
        self.imports: dict[str, str] = {}  # module-level alias -> canonical dotted name
        self.module_names: set[str] = set()  # module-level names that are not imports
        self.rejected: set[str] = set()  # names whose import was rejected (reported once, at the import)
        self.scopes: list[set[str]] = []  # function, lambda and comprehension bindings, innermost last
        self.marks: dict[int, int] = {}  # id(node) -> how the parent uses it
        self.methods: dict[int, str] = {}  # id(FunctionDef) -> class name, for methods
        self.function_depth = 0
        self.class_depth = 0
        self.annotation_depth = 0

    def report(self, node: cst.CSTNode, rule: str, message: str) -> None:
        self.found.append((node, rule, message))

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
