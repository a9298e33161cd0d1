"""Names, attributes, calls and values against the allow-lists; the length of string literals."""

from __future__ import annotations

import libcst as cst

from .._table import ATTRIBUTE_BUILTINS
from ._base import (
    USE_ALL,
    USE_ATTR,
    USE_ATTR_BUILTIN,
    USE_CALLEE,
    USE_DEF,
    USE_INERT,
    USE_KEYWORD,
    USE_ROOT,
    USE_STORE,
    CheckerBase,
)
from ._nodes import chain_root, dotted_name, simple_string_parts

__all__ = ["NameChecks"]


class NameChecks(CheckerBase):
    """Names, attributes, calls and values against the allow-lists; string lengths.

    Rules non-ascii-name, forbidden-name, forbidden-attribute, dynamic-attribute, call-not-allowed,
    reference-not-allowed and long-string.
    """

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
        if self.marks.get(id(node)) == USE_ATTR:  # an inner part of a longer concatenation
            return True
        total, stack = 0, [node]
        while stack:
            part = stack.pop()
            if isinstance(part, cst.ConcatenatedString):
                self.marks[id(part)] = USE_ATTR
                stack.extend((part.left, part.right))
            elif isinstance(part, cst.SimpleString):
                total += len(part.raw_value)
            elif isinstance(part, cst.FormattedString):
                total += sum(len(p.value) for p in part.parts if isinstance(p, cst.FormattedStringText))
        if total > self.table.max_string and not any(
            len(p.raw_value) > self.table.max_string for p in simple_string_parts(node)
        ):
            self._long_string(node, total)
        return True

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Name) and func.value in ATTRIBUTE_BUILTINS and not self._is_local(func.value):
            self.marks[id(func)] = USE_ATTR_BUILTIN
            self._attribute_builtin(node, func.value)
        elif isinstance(func, cst.Name | cst.Attribute):
            self.marks.setdefault(id(func), USE_CALLEE)
        if (
            isinstance(func, cst.Name)
            and func.value in ("isinstance", "issubclass")
            and self._resolve(func.value)[0] == "builtin"
            and len(node.args) == 2
            and not node.args[1].star
        ):
            # The type argument is only compared against, never called: classes are allowed there.
            kind = node.args[1].value
            for value in [e.value for e in kind.elements] if isinstance(kind, cst.Tuple) else [kind]:
                self.marks.setdefault(id(value), USE_INERT)

    def visit_Comparison(self, node: cst.Comparison) -> None:
        for value in (node.left, *(t.comparator for t in node.comparisons)):
            self.marks.setdefault(id(value), USE_INERT)

    def _constructor_alias(self, node: cst.CSTNode, full: str, usage: int | None) -> None:
        """Rule constructor-alias: a class that may not be called may not be bound, stored, passed or returned
        either (``T = torch.Tensor; T(n)`` would call it); only annotations, isinstance() and comparisons."""
        if usage == USE_INERT or self.annotation_depth or not self.table.constructor_only_as_type(full):
            return
        self.report(
            node,
            "constructor-alias",
            f"{full} may not be called, so it may not be used as a value either (an alias could call it): "
            "use it only in annotations, isinstance() and comparisons",
        )

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
        self.marks[id(node.attr)] = USE_ATTR
        if not self.table.attribute_allowed(attr):
            self.report(
                node.attr,
                "forbidden-attribute",
                f"attribute {attr!r} is not allowed: {self._attribute_reason(attr)}",
            )
        if self.marks.get(id(node)) == USE_ATTR:  # an inner link of a chain already checked
            return
        root, inner = chain_root(node)
        if root is None:
            return
        for link in inner:
            self.marks[id(link)] = USE_ATTR
        usage = self.marks.get(id(node))
        self.marks[id(root)] = USE_ROOT
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
        dotted = dotted_name(node)
        assert dotted is not None
        full = qualified + dotted[len(root.value) :]
        if usage == USE_CALLEE:
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
        else:
            self._constructor_alias(node, full, usage)

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
        if usage in (USE_ATTR, USE_KEYWORD):
            return
        name = node.value
        if usage == USE_ATTR_BUILTIN:
            return
        if name in self.table.forbidden_names:
            self.report(
                node,
                "forbidden-name",
                f"{name!r} is not allowed: it reaches code, files or interpreter internals; "
                "remove it (hooks receive everything a recipe may use as arguments)",
            )
            return
        if name.startswith("__") and name.endswith("__") and usage not in (USE_ALL, USE_DEF):
            self.report(
                node,
                "forbidden-name",
                f"dunder name {name!r} is not allowed: it reaches interpreter internals; use plain names",
            )
            return
        if usage in (USE_STORE, USE_ROOT, USE_ALL, USE_DEF) or self.annotation_depth:
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
            elif usage == USE_CALLEE and not self.table.call_allowed(qualified):
                self.report(
                    node,
                    "call-not-allowed",
                    f"{qualified}() is not on the allowed calls: use an "
                    "allowed operation (see docs/surface.md)",
                )
            elif usage != USE_CALLEE:
                self._constructor_alias(node, qualified, usage)
        elif kind == "builtin":
            if usage == USE_CALLEE and not self.table.call_allowed(name):
                self.report(
                    node,
                    "call-not-allowed",
                    f"builtin {name}() is not on the allowed calls: use "
                    "an allowed builtin (see docs/surface.md)",
                )
            elif usage != USE_CALLEE and not self.table.value_allowed(name):
                self.report(
                    node,
                    "reference-not-allowed",
                    f"builtin {name!r} is not on the allow-list: "
                    "use an allowed builtin (see docs/surface.md)",
                )
