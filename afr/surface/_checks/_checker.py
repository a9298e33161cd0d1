"""The composed visitor: every check family over one shared state, walked read-only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import libcst as cst

from ._functions import FunctionChecks
from ._imports import ImportChecks
from ._names import NameChecks
from ._statements import StatementChecks
from ._structure import StructureChecks
from ._values import ValueChecks

__all__ = ["Checker"]


class Checker(ValueChecks, StructureChecks, ImportChecks, FunctionChecks, NameChecks, StatementChecks):
    """Every rule family in one visitor over one shared state (see :class:`~._base.CheckerBase`).

    Handlers follow libcst's naming (``visit_Name``, ``leave_ClassDef``, ``visit_FunctionDef_body``) but
    :meth:`walk` is a read-only traversal: libcst's own ``visit`` rebuilds every node, which would
    dominate the validation time.
    """

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
    visit = getattr(Checker, f"visit_{cls.__name__}", None)
    leave = getattr(Checker, f"leave_{cls.__name__}", None)
    body = "body" if hasattr(Checker, f"visit_{cls.__name__}_body") else None
    fields = tuple(
        f.name for f in dataclasses.fields(cls) if not f.name.startswith(("whitespace", "lpar", "rpar"))
    )
    return visit, leave, body, fields
