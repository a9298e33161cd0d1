"""Where the model can flow: item and sequence mutation of modules falls under attribute assignment's rule.

``model[0] = ...``, ``del model[1]``, ``model.insert(0, ...)`` or ``layers.append(...)`` change the
architecture as ``model.fc = ...`` would (the state-dict keys shift), and storing the model in a container
keeps it past the hook. Which expressions may hold a module is decided by a flow-insensitive, name-based
taint over the whole file (conservative: a name tainted anywhere is tainted everywhere):

* sources: ``local_objective``'s model parameter and parameters annotated as ``nn.Module``;
* it spreads by assignment, ``for``/comprehension targets, ``with … as``, containers holding a tainted
  value, attributes and items of a tainted value, builtins given one (``list(model)``), the methods of a
  module that return it (``model.train()``, ``.to(...)``), helper functions given one (their parameter at
  that position) or returning one, and lambdas or functions whose result is tainted.

``model.parameters()`` and ``named_parameters()`` yield parameters, not modules: they do not spread it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import libcst as cst

from ._base import CheckerBase
from ._nodes import target_names

__all__ = ["ValueChecks", "module_taint"]

# Module (and ModuleList/ModuleDict) methods whose result may be the module itself or a submodule.
_MODULE_RESULTS = frozenset(
    {"to", "float", "double", "half", "bfloat16", "cpu", "cuda", "train", "eval", "requires_grad_", "type"}
    | {"share_memory", "to_empty", "get", "values", "items", "pop", "copy", "setdefault"}
)
# Methods that change a container in place (nn.Sequential, ModuleList, ModuleDict, list, dict).
_MUTATORS = frozenset(
    {"insert", "append", "extend", "pop", "remove", "clear", "update", "popitem", "setdefault", "add_module"}
)
# Methods that put their argument into the receiver.
_STORES = frozenset(["insert", "append", "extend", "update", "setdefault", "add"])
_MODULE_TYPES = frozenset({"Module", "nn.Module", "torch.nn.Module"})


_SKIP = (cst.BaseParenthesizableWhitespace, cst.EmptyLine, cst.TrailingWhitespace, cst.Newline, cst.Comment)
_LAYOUT_FIELDS = ("whitespace", "lpar", "rpar", "leading_lines", "header", "footer", "comma", "semicolon")
_FIELDS: dict[type, tuple[str, ...]] = {}
# The nodes the taint reads; every other node is only walked through.
_SPREADING = (
    cst.Assign,
    cst.AnnAssign,
    cst.AugAssign,
    cst.NamedExpr,
    cst.For,
    cst.CompFor,
    cst.WithItem,
    cst.Return,
    cst.Call,
)


def _children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    cls = type(node)
    names = _FIELDS.get(cls)
    if names is None:
        fields = dataclasses.fields(node)  # type: ignore[arg-type]
        names = _FIELDS[cls] = tuple(f.name for f in fields if not f.name.startswith(_LAYOUT_FIELDS))
    for name in names:
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            if not isinstance(value, _SKIP):
                yield value
        elif isinstance(value, tuple | list):
            yield from (v for v in value if isinstance(v, cst.CSTNode) and not isinstance(v, _SKIP))


def _annotation_text(annotation: cst.Annotation | None) -> str:
    node = annotation.annotation if annotation is not None else None
    parts = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return ""


class _Taint:
    """The names that may hold a module, computed to a fixed point."""

    def __init__(self, module: cst.Module, imports: set[str]) -> None:
        self.imports = imports
        self.names: set[str] = set()
        self.functions: dict[str, list[cst.FunctionDef]] = {}
        self.nodes: list[tuple[cst.CSTNode, cst.FunctionDef | None]] = []
        stack: list[tuple[cst.CSTNode, cst.FunctionDef | None]] = [(module, None)]
        while stack:  # one flat list of (node, enclosing function): each pass is a loop, not a recursion
            node, function = stack.pop()
            if isinstance(node, _SPREADING):
                self.nodes.append((node, function))
            elif isinstance(node, cst.BaseNumber | cst.SimpleString | cst.Name):
                continue  # leaves
            if isinstance(node, cst.FunctionDef):
                self.functions.setdefault(node.name.value, []).append(node)
                function = node
                self._sources(node)
            stack.extend((child, function) for child in _children(node))

    def _sources(self, fn: cst.FunctionDef) -> None:
        params = [*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params]
        for i, param in enumerate(params):
            if (fn.name.value == "local_objective" and i == 2) or _annotation_text(param.annotation) in (
                _MODULE_TYPES
            ):
                self.names.add(param.name.value)

    def solve(self) -> set[str]:
        if not self.names:
            return self.names  # no source: nothing can hold a module
        for _ in range(50):  # each pass only adds names; a handful of passes reach the fixed point
            before = len(self.names)
            for node, function in self.nodes:
                self._spread(node, function)
            if len(self.names) == before:
                break
        return self.names

    def _bind(self, target: cst.BaseExpression) -> None:
        self.names.update(n.value for n in target_names(target))

    def _spread(self, node: cst.CSTNode, function: cst.FunctionDef | None) -> None:
        if isinstance(node, cst.Assign) and self.tainted(node.value):
            for target in node.targets:
                self._bind(target.target)
        elif isinstance(node, cst.AnnAssign | cst.AugAssign) and node.value is not None:
            if self.tainted(node.value):
                self._bind(node.target)
        elif (isinstance(node, cst.NamedExpr) and self.tainted(node.value)) or (
            isinstance(node, cst.For | cst.CompFor) and self.tainted(node.iter)
        ):
            self._bind(node.target)
        elif isinstance(node, cst.WithItem) and node.asname is not None and self.tainted(node.item):
            self._bind(node.asname.name)
        elif isinstance(node, cst.Return) and function is not None and node.value is not None:
            if self.tainted(node.value):
                self.names.add(function.name.value)
        elif isinstance(node, cst.Call):
            self._into_helper(node)

    def _into_helper(self, call: cst.Call) -> None:
        """A helper of the file given a tainted argument: its parameter at that position is tainted."""
        func = call.func
        on_self = isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)
        name = func.attr.value if isinstance(func, cst.Attribute) and on_self else None
        name = func.value if isinstance(func, cst.Name) else name
        for fn in self.functions.get(name or "", []):
            params = [p.name.value for p in (*fn.params.posonly_params, *fn.params.params)]
            if on_self and params:
                params = params[1:]
            for i, arg in enumerate(call.args):
                if not self.tainted(arg.value):
                    continue
                if arg.star or (arg.keyword is None and i >= len(params)):
                    self.names.update(p.name.value for p in _all_params(fn))
                elif arg.keyword is not None:
                    self.names.add(arg.keyword.value)
                else:
                    self.names.add(params[i])

    def tainted(self, node: cst.BaseExpression | None) -> bool:
        """Whether the expression may evaluate to a module or a container holding one."""
        stack = [node]
        while stack:
            expr = stack.pop()
            if expr is None:
                continue
            if isinstance(expr, cst.Name):
                if expr.value in self.names:
                    return True
            elif isinstance(expr, cst.Attribute | cst.Subscript):
                stack.append(expr.value)
            elif isinstance(expr, cst.Call):
                func = expr.func
                if isinstance(func, cst.Attribute):
                    root = func.value
                    while isinstance(root, cst.Attribute):
                        root = root.value
                    if isinstance(root, cst.Name) and root.value in self.imports:
                        continue  # torch.*, math.*: they return tensors and numbers, not modules
                    if func.attr.value in _MODULE_RESULTS:
                        stack.append(func.value)
                    if func.attr.value in self.names:  # a helper method returning a module
                        return True
                elif isinstance(func, cst.Name):
                    if func.value in self.names:
                        return True
                    if func.value not in self.functions:  # builtins pass their arguments on
                        stack.extend(a.value for a in expr.args)
                else:
                    stack.append(func)
            elif isinstance(expr, cst.Tuple | cst.List | cst.Set):
                stack.extend(e.value for e in expr.elements)
            elif isinstance(expr, cst.Dict):
                for e in expr.elements:
                    stack.extend([e.key, e.value] if isinstance(e, cst.DictElement) else [e.value])
            elif isinstance(expr, cst.ListComp | cst.SetComp | cst.GeneratorExp):
                stack.append(expr.elt)
            elif isinstance(expr, cst.DictComp):
                stack.extend((expr.key, expr.value))
            elif isinstance(expr, cst.BinaryOperation):
                stack.extend((expr.left, expr.right))
            elif isinstance(expr, cst.IfExp):
                stack.extend((expr.body, expr.orelse))
            elif isinstance(expr, cst.BooleanOperation):
                stack.extend((expr.left, expr.right))
            elif isinstance(expr, cst.NamedExpr | cst.StarredElement):
                stack.append(expr.value)
            elif isinstance(expr, cst.Lambda):
                stack.append(expr.body)
        return False


def _all_params(fn: cst.FunctionDef) -> list[cst.Param]:
    params = [*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params]
    params += [p for p in (fn.params.star_arg, fn.params.star_kwarg) if isinstance(p, cst.Param)]
    return params


def module_taint(module: cst.Module, imports: set[str]) -> _Taint:
    """The solved taint of a module (see the module docstring)."""
    taint = _Taint(module, imports)
    taint.solve()
    return taint


class ValueChecks(CheckerBase):
    """Rule module-mutation. Handlers call ``super()`` so that the other families' handlers still run."""

    taint: _Taint | None = None

    def check_module(self, module: cst.Module) -> None:
        super().check_module(module)  # type: ignore[misc]
        self.taint = module_taint(module, set(self.imports))

    def _mutation(self, node: cst.CSTNode, what: str) -> None:
        self.report(
            node,
            "module-mutation",
            f"{what}: the model, its submodules and parameters are never changed by item or sequence "
            "operations nor stored in containers (the architecture is the profile's model variant); "
            "compute with them in the hook instead",
        )

    def _tainted(self, node: cst.BaseExpression | None) -> bool:
        return self.taint is not None and self.taint.tainted(node)

    def _item_target(self, target: cst.BaseExpression, what: str) -> None:
        stack = [target]
        while stack:
            node = stack.pop()
            if isinstance(node, cst.Tuple | cst.List):
                stack.extend(e.value for e in node.elements)
            elif isinstance(node, cst.StarredElement):
                stack.append(node.value)
            elif isinstance(node, cst.Subscript) and self._tainted(node.value):
                self._mutation(node, what)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        super().visit_AssignTarget(node)  # type: ignore[misc]
        self._item_target(node.target, "an item of a module or parameter may not be assigned")

    def visit_Assign(self, node: cst.Assign) -> None:
        if self._tainted(node.value) and any(
            isinstance(t.target, cst.Subscript | cst.Attribute) for t in node.targets
        ):
            self._mutation(node.value, "a module may not be stored in a container")

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        super().visit_AugAssign(node)  # type: ignore[misc]
        if isinstance(node.target, cst.Name) and self._tainted(node.target):
            self._mutation(node.target, "a module may not be extended in place")
        self._item_target(node.target, "an item of a module or parameter may not be changed in place")
        if not isinstance(node.target, cst.Name) and self._tainted(node.value):
            self._mutation(node.value, "a module may not be stored in a container")

    def visit_Del(self, node: cst.Del) -> None:
        super().visit_Del(node)  # type: ignore[misc]
        self._item_target(node.target, "an item of a module may not be deleted")

    def visit_Call(self, node: cst.Call) -> None:
        super().visit_Call(node)  # type: ignore[misc]
        func = node.func
        if not isinstance(func, cst.Attribute):
            return
        method = func.attr.value
        if method in _MUTATORS and self._tainted(func.value):
            self._mutation(node, f"{method}() may not change a module or its submodules")
        elif method in _STORES and any(self._tainted(a.value) for a in node.args):
            self._mutation(node, f"a module may not be stored in a container by {method}()")
