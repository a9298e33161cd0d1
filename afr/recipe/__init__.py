"""Recipes: FedAvg (the baseline) and the classic FL algorithms as hook overrides.

Recipe code is what a search mutates: it cannot reach the engine, the ledger, the budget
accountant or the evaluation.
"""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

from ..errors import ConfigError
from ._base import HOOKS, ClientUpdate, LocalContext, Params, Recipe
from ._ops import (
    adagrad_second_moment,
    adam_second_moment,
    adaptive_step,
    first_moment,
    heavy_ball,
    proximal_term,
    sample_weights,
    scaffold_broadcast,
    scaffold_client_control,
    scaffold_correction,
    scaffold_server_control,
    weighted_mean_delta,
    yogi_second_moment,
)
from ._scalar import Scalar, scalar
from .fedavg import FedAvg
from .fedavgm import FedAvgM
from .fedopt import FedAdagrad, FedAdam, FedOpt, FedYogi
from .fedprox import FedProx
from .scaffold import Scaffold

__all__ = [
    "HOOKS",
    "Recipe",
    "ClientUpdate",
    "LocalContext",
    "Params",
    "Scalar",
    "scalar",
    "FedAvg",
    "FedProx",
    "FedAvgM",
    "FedOpt",
    "FedAdam",
    "FedYogi",
    "FedAdagrad",
    "Scaffold",
    "RECIPES",
    "recipe_class",
    "weighted_mean_delta",
    "proximal_term",
    "sample_weights",
    "heavy_ball",
    "first_moment",
    "adam_second_moment",
    "yogi_second_moment",
    "adagrad_second_moment",
    "adaptive_step",
    "scaffold_broadcast",
    "scaffold_correction",
    "scaffold_client_control",
    "scaffold_server_control",
]

RECIPES: dict[str, type[Recipe]] = {
    cls.name: cls for cls in (FedAvg, FedProx, FedAvgM, FedAdam, FedYogi, FedAdagrad, Scaffold)
}


def recipe_class(name_or_path: str) -> type[Recipe]:
    """A built-in recipe by name, or the single Recipe subclass defined in a ``.py`` file."""
    if name_or_path in RECIPES:
        return RECIPES[name_or_path]
    path = Path(name_or_path)
    if path.suffix != ".py":
        raise ConfigError(
            f"unknown recipe {name_or_path!r}",
            where="recipe=",
            fix=f"use one of {', '.join(sorted(RECIPES))}, or the path of a recipe .py file",
        )
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
