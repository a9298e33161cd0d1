"""Recipes: FedAvg (the baseline) and the classic FL algorithms as hook overrides.

Recipe code is what a search mutates: it cannot reach the engine, the ledger, the budget
accountant or the evaluation.
"""

from __future__ import annotations

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
from ._registry import DEFAULT_BASELINE, RECIPES, RecipeSource, find_recipe_class, recipe_class, recipe_source
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
    "RecipeSource",
    "recipe_source",
    "find_recipe_class",
    "DEFAULT_BASELINE",
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
