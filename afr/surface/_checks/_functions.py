"""Functions and methods (hooks), their scopes, annotations and parameter defaults."""

from __future__ import annotations

import libcst as cst

from ._base import USE_DEF, USE_STORE, CheckerBase
from ._nodes import function_bindings, is_literal, param_names, target_names

__all__ = ["FunctionChecks"]


class FunctionChecks(CheckerBase):
    """Functions and methods; opens and closes function, lambda and comprehension scopes.

    Rules dunder-def, decorator, hook-signature, frozen-hook, reserved-name (methods), annotation,
    default-value and async (def, comprehensions).
    """

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        name = node.name.value
        self.marks[id(node.name)] = USE_DEF  # a dunder name is reported as dunder-def, not forbidden-name
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
        self.scopes.append(function_bindings(node))

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
            got = param_names(node.params)
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
        self.scopes.append({n.lstrip("*") for n in param_names(node.params)})

    def leave_Lambda_body(self, node: cst.Lambda) -> None:
        self.scopes.pop()

    def _comprehension(self, node: cst.ListComp | cst.SetComp | cst.DictComp | cst.GeneratorExp) -> bool:
        names: set[str] = set()
        comp: cst.CompFor | None = node.for_in
        while comp is not None:
            if comp.asynchronous is not None:
                self.report(comp, "async", "`async for` is not allowed")
            names.update(n.value for n in target_names(comp.target))
            self._store_attributes(comp.target)
            for n in target_names(comp.target):
                self.marks[id(n)] = USE_STORE
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
            elif not (isinstance(part, cst.Name | cst.SimpleString | cst.Ellipsis) or is_literal(part)):
                self.report(
                    part,
                    "annotation",
                    "annotations may only name types (names, attributes, subscripts, `|`, literals): "
                    "they are evaluated on import",
                )
        return True

    def leave_Annotation(self, original_node: cst.Annotation) -> None:
        self.annotation_depth -= 1

    def visit_Param(self, node: cst.Param) -> None:
        self.marks[id(node.name)] = USE_STORE
        if node.default is not None and not is_literal(node.default):
            self.report(
                node.default,
                "default-value",
                "a parameter default must be a plain literal (it is evaluated on import): "
                "default to None and compute the value in the body",
            )
