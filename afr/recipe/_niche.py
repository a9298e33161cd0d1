"""A recipe file's niche: which hooks its recipe class overrides and, for a file that declares them, which
mechanisms it composes — read statically (nothing is run or imported).

The evolve agent writes its genome into the recipe class's docstring as one line
(``Mechanisms: server_adam(beta1, beta2, tau), prox(mu)``; ``afr/agents/mechanisms/``); two files with
the same line are the same mechanism set, whatever their scalar values. A file without that line (an LLM's,
a user's) has no declared mechanism set: its niche is the hooks it overrides.

A private module of :mod:`afr.recipe` (candidate files may import its public modules, not this one): the
campaign's finalist selection and the report read it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from afr._parsing import parse_python

from ._base import HOOKS

__all__ = ["RecipeNiche", "recipe_niche", "MECHANISMS_MARKER"]

MECHANISMS_MARKER = "Mechanisms:"


@dataclass(frozen=True)
class RecipeNiche:
    """What a recipe file changes, coarsely: the hooks it overrides and its declared mechanism set."""

    hooks: tuple[str, ...] = ()
    """Hooks the recipe class defines, in the engine's order."""
    mechanisms: tuple[str, ...] | None = None
    """Declared mechanisms (``key`` or ``key=variant``), sorted; None when the file declares none."""

    @property
    def label(self) -> str:
        """``mechanisms server_adam, prox (hooks aggregate, local_objective)`` or ``hooks client_lr``."""
        hooks = ", ".join(self.hooks) or "none"
        if self.mechanisms is None:
            return f"hooks {hooks}"
        return f"mechanisms {', '.join(self.mechanisms) or 'none'} (hooks {hooks})"


def recipe_niche(source: str) -> RecipeNiche:
    """The niche of a recipe file (an empty one for a file that does not parse or defines no class)."""
    try:
        tree = parse_python(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return RecipeNiche()
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    if not classes:
        return RecipeNiche()
    # The recipe is the file's last class (the engine takes the last Recipe subclass); an evolve file's
    # recipe class is the last one carrying the marker.
    marked = [c for c in classes if MECHANISMS_MARKER in (ast.get_docstring(c, clean=False) or "")]
    cls = marked[-1] if marked else classes[-1]
    defined = {s.name for s in cls.body if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef)}
    hooks = tuple(h for h in HOOKS if h in defined)
    if not marked:
        return RecipeNiche(hooks)
    doc = ast.get_docstring(cls, clean=False) or ""
    line = " ".join(doc[doc.rfind(MECHANISMS_MARKER) + len(MECHANISMS_MARKER) :].split())
    tokens = {t.strip() for t in re.sub(r"\([^)]*\)", "", line).replace(";", ",").split(",")}
    return RecipeNiche(hooks, tuple(sorted(t.replace(" ", "") for t in tokens if t and t != "none")))
