"""Read-only helpers on libcst nodes shared by the check families."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst

__all__ = [
    "dotted_name",
    "chain_root",
    "number_literal",
    "is_literal",
    "is_docstring",
    "suite_statements",
    "target_names",
    "bound_name",
    "param_names",
    "function_bindings",
    "simple_string_parts",
]


def dotted_name(node: cst.BaseExpression) -> str | None:
    """``a.b.c`` for a chain of names, else None."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        head = dotted_name(node.value)
        return None if head is None else f"{head}.{node.attr.value}"
    return None


def chain_root(node: cst.Attribute) -> tuple[cst.Name | None, list[cst.Attribute]]:
    inner: list[cst.Attribute] = []
    value: cst.BaseExpression = node.value
    while isinstance(value, cst.Attribute):
        inner.append(value)
        value = value.value
    return (value if isinstance(value, cst.Name) else None), inner


def number_literal(node: cst.BaseExpression) -> float | None:
    sign = 1.0
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Minus | cst.Plus):
        sign = -1.0 if isinstance(node.operator, cst.Minus) else 1.0
        node = node.expression
    if isinstance(node, cst.Integer | cst.Float):
        return sign * float(node.evaluated_value)
    return None


def is_literal(node: cst.BaseExpression, *, mutable: bool = False) -> bool:
    """Plain immutable literals: numbers, strings (not f-strings), True/False/None, tuples of them.

    Lists, sets and dicts only with ``mutable=True``: a mutable constant at module or class level, or as
    a parameter default, is one object shared by every client and the server — a side channel.
    """
    if number_literal(node) is not None or isinstance(node, cst.SimpleString | cst.Imaginary | cst.Ellipsis):
        return True
    if isinstance(node, cst.Name):
        return node.value in ("True", "False", "None")
    if isinstance(node, cst.ConcatenatedString):
        return is_literal(node.left) and is_literal(node.right)
    if isinstance(node, cst.Tuple) or (mutable and isinstance(node, cst.List | cst.Set)):
        elements = node.elements
        return all(isinstance(e, cst.Element) and is_literal(e.value, mutable=mutable) for e in elements)
    if mutable and isinstance(node, cst.Dict):
        return all(
            isinstance(e, cst.DictElement)
            and is_literal(e.key, mutable=mutable)
            and is_literal(e.value, mutable=mutable)
            for e in node.elements
        )
    return False


def is_docstring(stmt: cst.BaseSmallStatement) -> bool:
    return isinstance(stmt, cst.Expr) and isinstance(stmt.value, cst.SimpleString | cst.ConcatenatedString)


def suite_statements(body: cst.BaseSuite) -> Sequence[cst.BaseStatement | cst.BaseSmallStatement]:
    return body.body


def target_names(node: cst.BaseExpression) -> Iterator[cst.Name]:
    if isinstance(node, cst.Name):
        yield node
    elif isinstance(node, cst.Tuple | cst.List):
        for element in node.elements:
            yield from target_names(element.value)
    elif isinstance(node, cst.StarredElement):
        yield from target_names(node.value)


def bound_name(alias: cst.ImportAlias) -> str:
    """The name an import alias binds (``import a.b`` binds ``a``)."""
    if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
        return alias.asname.name.value
    return (dotted_name(alias.name) or "").partition(".")[0]


def param_names(params: cst.Parameters) -> tuple[str, ...]:
    names = [p.name.value for p in (*params.posonly_params, *params.params)]
    if isinstance(params.star_arg, cst.Param):
        names.append("*" + params.star_arg.name.value)
    names.extend(p.name.value for p in params.kwonly_params)
    if params.star_kwarg is not None:
        names.append("**" + params.star_kwarg.name.value)
    return tuple(names)


def function_bindings(fn: cst.FunctionDef) -> set[str]:
    """Names a function binds (parameters and assignment-like targets), a superset-free approximation.

    Walrus and comprehension targets are left out on purpose: a name the validator wrongly takes
    for a builtin or an import is checked more strictly, never less.
    """
    names = {name.lstrip("*") for name in param_names(fn.params)}

    def block(suite: cst.BaseSuite) -> None:
        for stmt in suite.body:
            statement(stmt)

    def statement(stmt: cst.CSTNode) -> None:
        if isinstance(stmt, cst.SimpleStatementLine | cst.SimpleStatementSuite):
            for small in stmt.body:
                if isinstance(small, cst.Assign):
                    for target in small.targets:
                        names.update(n.value for n in target_names(target.target))
                elif isinstance(small, cst.AnnAssign | cst.AugAssign):
                    names.update(n.value for n in target_names(small.target))
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
                names.update(n.value for n in target_names(stmt.target))
            block(stmt.body)
            if stmt.orelse is not None:
                block(stmt.orelse.body)
        elif isinstance(stmt, cst.Try | cst.TryStar):
            block(stmt.body)
            for handler in stmt.handlers:
                if handler.name is not None:
                    names.update(n.value for n in target_names(handler.name.name))
                block(handler.body)
            if stmt.orelse is not None:
                block(stmt.orelse.body)
            if stmt.finalbody is not None:
                block(stmt.finalbody.body)
        elif isinstance(stmt, cst.With):
            for item in stmt.items:
                if item.asname is not None:
                    names.update(n.value for n in target_names(item.asname.name))
            block(stmt.body)

    block(fn.body)
    return names


def simple_string_parts(node: cst.ConcatenatedString) -> Iterator[cst.SimpleString]:
    for part in (node.left, node.right):
        if isinstance(part, cst.SimpleString):
            yield part
        elif isinstance(part, cst.ConcatenatedString):
            yield from simple_string_parts(part)
