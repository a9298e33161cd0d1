"""Statements: global/nonlocal, async, yield, for, with, del, except and assignment targets."""

from __future__ import annotations

import libcst as cst

from ._base import USE_KEYWORD, USE_STORE, CheckerBase
from ._nodes import dotted_name, target_names

__all__ = ["StatementChecks"]


class StatementChecks(CheckerBase):
    """Statements; marks the names each statement binds.

    Rules global-statement, async, yield, with-not-allowed, del-attribute, bare-except and (through
    the assignment targets) attribute-assignment.
    """

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
        for name in target_names(node.target):
            self.marks[id(name)] = USE_STORE
        self._store_attributes(node.target)

    def visit_With(self, node: cst.With) -> None:
        if node.asynchronous is not None:
            self.report(node, "async", "`async with` is not allowed")
        allowed = self.table.allowed_context_managers
        for item in node.items:
            ok = False
            if isinstance(item.item, cst.Call):
                dotted = dotted_name(item.item.func)
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
                for name in target_names(item.asname.name):
                    self.marks[id(name)] = USE_STORE
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
            for name in target_names(node.name.name):
                self.marks[id(name)] = USE_STORE

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        for name in target_names(node.target):
            self.marks.setdefault(id(name), USE_STORE)
        self._store_attributes(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        for name in target_names(node.target):
            self.marks.setdefault(id(name), USE_STORE)
        self._store_attributes(node.target)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        for name in target_names(node.target):
            self.marks[id(name)] = USE_STORE
        self._store_attributes(node.target)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        for name in target_names(node.target):
            self.marks[id(name)] = USE_STORE

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self.marks[id(node.keyword)] = USE_KEYWORD
