"""The genome as a file carries it: the ``Mechanisms:`` line of the evolve class's docstring.

The line lists the genes (``key`` or ``key=variant``; the parenthesised scalar names are
informational)::

    Mechanisms: server_adam(beta1, beta2, tau), prox(mu), lr_schedule=cosine(lr_min_ratio)

and the scalar defaults are the ``x = scalar(default, low, high, ...)`` declarations of the class body.
:func:`read_genome` recovers both with Python's parser (reading needs no edit).
"""

from __future__ import annotations

import ast
import math
import re
import textwrap
from functools import lru_cache

from afr._parsing import parse_python

from ._base import MECHANISMS, SLOTS, Gene, Genome

MARKER = "Mechanisms:"


def has_marker(docstring: str | None) -> bool:
    """Whether a class docstring carries the genome line (the evolve class is found by it)."""
    return docstring is not None and MARKER in docstring


def marker_lines(genome: Genome) -> list[str]:
    """The machine-readable genome line, wrapped (continuation lines are indented by 4 more spaces)."""
    tokens = []
    for gene in genome.genes:
        names = list(gene.mechanism.scalar_specs(gene.variant))
        tokens.append(gene.token + (f"({', '.join(names)})" if names else ""))
    text = f"{MARKER} {', '.join(tokens) if tokens else 'none'}"
    return textwrap.wrap(text, 100, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)


def _parse_tokens(line: str) -> list[Gene]:
    text = re.sub(r"\([^)]*\)", "", line.split(MARKER, 1)[1])
    genes: list[Gene] = []
    for raw in text.replace(";", ",").split(","):
        token = raw.strip()
        if not token or token == "none":
            continue
        key, _, variant = token.partition("=")
        key, variant = key.strip(), variant.strip()
        if key in MECHANISMS:
            genes.append(Gene(key, variant))
    return genes


@lru_cache(maxsize=2048)  # a pure function of the text (the Genome it returns is never mutated)
def read_genome(source: str) -> Genome | None:
    """The genome written in an evolve candidate file (None: not such a file, or unreadable).

    Reading needs no edit, so it uses Python's own parser (fast); every edit goes through libcst.
    """
    try:
        tree = parse_python(source)
    except (SyntaxError, ValueError):
        return None
    classes = [
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and has_marker(ast.get_docstring(node, clean=False))
    ]
    if not classes:
        return None
    cls = classes[-1]
    doc = ast.get_docstring(cls, clean=False) or ""
    at = doc.rfind(MARKER)
    by_slot: dict[str, Gene] = {}
    for gene in _parse_tokens(" ".join(doc[at:].split())):
        by_slot.setdefault(gene.slot, gene)
    values: dict[str, float] = {}
    for stmt in cls.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name)
            and stmt.value.func.id == "scalar"
            and stmt.value.args
        ):
            try:
                value = ast.literal_eval(stmt.value.args[0])
            except (ValueError, SyntaxError, TypeError):
                continue
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                values[stmt.targets[0].id] = float(value)
    return Genome(tuple(by_slot[s] for s in SLOTS if s in by_slot), values)


@lru_cache(maxsize=2048)  # a pure function of the text
def normalise_source(source: str) -> str:
    """The file modulo formatting, comments and docstrings (for duplicate detection)."""
    try:
        tree = parse_python(source)
    except SyntaxError:
        return source.strip()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, annotate_fields=False)
