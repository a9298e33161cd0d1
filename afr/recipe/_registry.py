"""Where recipes come from — the one home of recipe lookup and loading.

* :data:`RECIPES` / :func:`recipe_class`: the shipped recipes by name, or (trusted path) the single recipe
  class of a user's ``.py`` file, executed in this process.
* :class:`RecipeSource` / :func:`recipe_source`: a recipe *file as data* — the text agents edit and the
  validator reads, the class the sandbox runs, the scalars it declares — read without executing anything.
  A campaign's baseline is a ``RecipeSource``, so the parent process (which holds the test split) never runs
  a user's file: it parses it; the sandbox runs it.
* :func:`find_recipe_class`: which class of an executed namespace is *the* recipe (the last one defined).

Neither the registry nor the loaders are part of the recipe surface: candidate files cannot import them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from afr._parsing import parse_python

from ..errors import ConfigError
from ._base import Recipe
from ._scalar import Scalar
from .fedavg import FedAvg
from .fedavgm import FedAvgM
from .fedopt import FedAdagrad, FedAdam, FedYogi
from .fedprox import FedProx
from .scaffold import Scaffold

__all__ = [
    "RECIPES",
    "recipe_class",
    "find_recipe_class",
    "RecipeSource",
    "recipe_source",
    "DEFAULT_BASELINE",
]

RECIPES: Mapping[str, type[Recipe]] = MappingProxyType(
    {cls.name: cls for cls in (FedAvg, FedProx, FedAvgM, FedAdam, FedYogi, FedAdagrad, Scaffold)}
)
"""The shipped recipes by their ``name``."""

DEFAULT_BASELINE = FedAvg.name
"""The baseline of a campaign whose profile names none."""

_PACKAGE = "afr.recipe"


def _unknown(spec: str) -> ConfigError:
    return ConfigError(
        f"unknown recipe {spec!r}",
        where="recipe=",
        fix=f"use one of {', '.join(sorted(RECIPES))}, or the path of a recipe .py file",
    )


def find_recipe_class(namespace: Mapping[str, Any], module_name: str) -> type[Recipe] | None:
    """The recipe a file defines: its last class deriving from :class:`Recipe` (None if there is none)."""
    defined = [
        value
        for value in namespace.values()
        if inspect.isclass(value) and issubclass(value, Recipe) and value.__module__ == module_name
    ]
    return defined[-1] if defined else None


def recipe_class(name_or_path: str) -> type[Recipe]:
    """A shipped recipe by name, or the single Recipe subclass of a ``.py`` file (executed here: trusted)."""
    if name_or_path in RECIPES:
        return RECIPES[name_or_path]
    path = Path(name_or_path)
    if path.suffix != ".py":
        raise _unknown(name_or_path)
    if not path.is_file():
        raise ConfigError(f"recipe file {str(path)!r} does not exist", where="recipe=", fix="check the path")
    spec = importlib.util.spec_from_file_location(f"afr_recipe_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: report its error as one message, not a traceback
        raise ConfigError(
            f"cannot import recipe file {str(path)!r}: {type(exc).__name__}: {exc}",
            where=str(path),
            fix="fix the file so that `python <file>` imports cleanly",
        ) from exc
    found = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, Recipe) and obj.__module__ == module.__name__
    ]
    if len(found) != 1:
        raise ConfigError(
            f"recipe file {str(path)!r} must define exactly one Recipe subclass, found {len(found)}",
            where=str(path),
            fix="define one class deriving from afr.recipe.FedAvg",
        )
    return found[0]


@dataclass(frozen=True)
class RecipeSource:
    """A recipe file as data: its text, the class that is the recipe, and the scalars that class declares.

    It answers ``name`` and ``declared_scalars()`` like a recipe class, so a profile can apply its ranges
    and defaults to either (:meth:`afr.profiles.Profile.scalar_space`).
    """

    text: str
    class_name: str
    """The recipe class: for a user's file, the last class deriving from a shipped recipe."""
    name: str
    """The recipe's ``name`` (the key of the profile's per-recipe defaults)."""
    label: str
    """How to refer to the file: ``afr/recipe/fedavg.py`` or the user's path."""
    shipped: str | None = None
    """The shipped recipe's name; None for a user's file."""
    scalars: Mapping[str, Scalar] = field(default_factory=dict)
    """Declared scalars with the class's own defaults and ranges, nearest declaration first."""

    @property
    def package(self) -> str | None:
        """The package a shipped file belongs to (its relative imports resolve there); None for a user's."""
        return _PACKAGE if self.shipped else None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def declared_scalars(self) -> dict[str, Scalar]:
        return dict(self.scalars)

    @classmethod
    def from_text(cls, text: str, label: str) -> RecipeSource:
        """A user's recipe file given as text (``label`` names it in messages), read as ``recipe_source``."""
        return _parse_user_file(text, label)


def recipe_source(spec: str | Path) -> RecipeSource:
    """The shipped recipe named ``spec``, or the recipe ``.py`` file at ``spec``, read but never executed.

    A user's file must define a class deriving (directly or through other classes of the file) from a
    shipped recipe imported from ``afr.recipe``; its scalars are its ``x = scalar(...)`` declarations (literal
    arguments, as the validator requires) over those of the shipped base.
    """
    text_spec = str(spec)
    if text_spec in RECIPES:
        cls = RECIPES[text_spec]
        path = Path(inspect.getsourcefile(cls) or "")
        return RecipeSource(
            text=path.read_text(encoding="utf-8"),
            class_name=cls.__name__,
            name=cls.name,
            label=f"afr/recipe/{path.name}",
            shipped=cls.name,
            scalars=MappingProxyType(cls.declared_scalars()),
        )
    path = Path(text_spec)
    if path.suffix != ".py":
        raise _unknown(text_spec)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"recipe file {text_spec!r} does not exist", where="recipe=", fix="check the path"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read recipe file {text_spec!r}: {exc}", where="recipe=", fix="give a UTF-8 .py file"
        ) from exc
    return _parse_user_file(text, text_spec)


def _parse_user_file(text: str, label: str) -> RecipeSource:
    try:
        tree = parse_python(text, filename=label)
    except (SyntaxError, ValueError) as exc:
        raise ConfigError(
            f"recipe file {label!r} does not parse: {exc}", where=label, fix="fix the syntax error"
        ) from exc
    imported: dict[str, type[Recipe]] = {}  # local name -> shipped recipe class
    scalar_names: set[str] = set()  # local names bound to afr.recipe.scalar
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(_PACKAGE):
            for alias in node.names:
                bound = alias.asname or alias.name
                shipped = next((c for c in RECIPES.values() if c.__name__ == alias.name), None)
                if shipped is not None:
                    imported[bound] = shipped
                elif alias.name == "scalar":
                    scalar_names.add(bound)
    classes: dict[str, ast.ClassDef] = {}
    chains: dict[str, list[ast.ClassDef]] = {}  # file class -> itself and its file ancestors, nearest first
    roots: dict[str, type[Recipe]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or len(node.bases) != 1:
            continue
        base = node.bases[0]
        if not isinstance(base, ast.Name):
            continue
        if base.id in imported:
            chains[node.name], roots[node.name] = [node], imported[base.id]
        elif base.id in chains:
            chains[node.name], roots[node.name] = [node, *chains[base.id]], roots[base.id]
        classes[node.name] = node
    recipes = [n.name for n in tree.body if isinstance(n, ast.ClassDef) and n.name in chains]
    if not recipes:
        raise ConfigError(
            f"recipe file {label!r} defines no recipe class",
            where=label,
            fix="derive a class from a shipped recipe, e.g. `from afr.recipe import FedAvg` and "
            "`class MyRecipe(FedAvg):`",
        )
    chosen = recipes[-1]
    scalars: dict[str, Scalar] = {}
    name = roots[chosen].name
    named = False
    for cls in chains[chosen]:
        for stmt in cls.body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
                continue
            target = stmt.targets[0]
            if not isinstance(target, ast.Name):
                continue
            if target.id == "name" and not named and isinstance(stmt.value, ast.Constant):
                name, named = str(stmt.value.value), True
            declared = _scalar(stmt.value, scalar_names, target.id, label)
            if declared is not None and target.id not in scalars:
                scalars[target.id] = declared
    for key, value in roots[chosen].declared_scalars().items():
        scalars.setdefault(key, value)
    return RecipeSource(
        text=text,
        class_name=chosen,
        name=name,
        label=label,
        shipped=None,
        scalars=MappingProxyType(dict(sorted(scalars.items()))),
    )


def _scalar(value: ast.expr, scalar_names: set[str], target: str, label: str) -> Scalar | None:
    """``scalar(default, low, high, log=..., integer=...)`` with literal arguments -> a Scalar (else None)."""
    if not (
        isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in scalar_names
    ):
        return None
    try:
        args = [ast.literal_eval(a) for a in value.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in value.keywords if k.arg is not None}
        declared = Scalar(*args, **kwargs)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise ConfigError(
            f"scalar {target!r} in {label!r} is not a literal declaration: {exc}",
            where=label,
            fix="declare scalars as `x = scalar(default, low, high, log=False, integer=False)` with literals",
        ) from exc
    object.__setattr__(declared, "name", target)
    return declared
