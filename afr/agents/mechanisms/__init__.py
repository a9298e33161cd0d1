"""The evolve agent's mechanism library: federated-learning mechanisms as libcst edits of a recipe file.

A candidate's *genome* is a set of genes, at most one per *slot* (mechanisms sharing a slot are
alternatives: one server optimiser, one robust combiner, one learning-rate schedule…), plus the current
defaults of its declared scalars. Hooks that several mechanisms touch are not stacked overrides: they
are re-rendered from the whole genome each time a mechanism is added or changed —

* ``aggregate`` = client weights rule × delta transforms (FedNova normalisation, norm clipping) ×
  combiner (weighted mean / trimmed mean / coordinate-wise median) × server update
  (SGD / momentum / Adam / Yogi / Adagrad) [+ the SCAFFOLD control-variate update];
* ``local_objective`` = task loss + a sum of terms (proximal, L2, SCAFFOLD correction);
* ``client_lr`` and ``local_steps`` = the base value × a schedule over rounds.

One module per mechanism family, each declaring its mechanisms (:class:`Mechanism`: slot, hooks,
summary, scalars) beside the fragments that render them:

* :mod:`.server` — server momentum, Adam, Yogi, Adagrad; :mod:`.combiners` — trimmed mean, median;
  :mod:`.weights` — client weighting; :mod:`.transforms` — FedNova, norm clipping;
  :mod:`.aggregate` — the ``aggregate`` composer that asks each of them for its fragment;
* :mod:`.objective` — proximal and L2 terms, and the ``local_objective`` composer;
  :mod:`.scaffold` — SCAFFOLD's control variates (four hooks);
* :mod:`.schedules` — learning-rate and local-step schedules; :mod:`.selection` — client sampling;
  :mod:`.variants` — the profile's model variant.

The rest is shared: :mod:`._base` (the types, the registry, scalar helpers), :mod:`._environment` (what
the agent knows about the profile), :mod:`._genome_io` (the ``Mechanisms:`` line and
:func:`read_genome`), :mod:`._hooks` (the renderer of every method), :mod:`._docs` (docstrings) and
:mod:`._writer` (the skeleton, the imports and :func:`write_recipe`).

The genome is written into the file itself (nothing is kept in the agent): the recipe class's
docstring ends with one machine-readable line::

    Mechanisms: server_adam(beta1, beta2, tau), prox(mu), lr_schedule=cosine(lr_min_ratio)

(``key`` or ``key=variant``; the parenthesised scalar names are informational) and the scalar defaults
are the ``x = scalar(default, low, high, ...)`` declarations of the class body. :func:`read_genome`
recovers both with Python's parser; :func:`write_recipe` applies a genome to a parent file with three libcst
transformers (imports, module docstring, recipe class body).

The evolve class derives from the campaign's baseline (a :class:`~afr.recipe.RecipeSource`, FedAvg by
default) and is found by its ``Mechanisms:`` line; hooks the genome does not render are the baseline's.
A shipped baseline is imported from ``afr.recipe``; a user's baseline file cannot be, so each candidate is
that file (its imports kept, missing ones added) followed by the evolve class. Mechanisms that a shipped
recipe also implements (server momentum, FedAdam/FedYogi/FedAdagrad, SCAFFOLD, FedProx's term) call
the same functions of ``afr.recipe`` as that recipe, so they compute exactly what it computes.

This package never imports the engine, the sandbox, the ledger, the budget accountant or the validator.
"""

from __future__ import annotations

# Every family module registers its mechanisms when imported: the library is complete once this
# package is (its order is SLOTS', whatever the order of these imports).
from . import (  # noqa: F401
    aggregate,
    combiners,
    objective,
    scaffold,
    schedules,
    selection,
    server,
    transforms,
    variants,
    weights,
)
from ._base import HOOK_ORDER, MECHANISMS, SLOTS, Gene, Genome, Mechanism, clip_tidy, render_scalar
from ._docs import describe_gene
from ._environment import Environment, environment, environment_from_brief
from ._genome_io import normalise_source, read_genome
from ._writer import skeleton, write_recipe

__all__ = [
    "Mechanism",
    "Gene",
    "Genome",
    "Environment",
    "MECHANISMS",
    "SLOTS",
    "HOOK_ORDER",
    "environment",
    "environment_from_brief",
    "read_genome",
    "write_recipe",
    "normalise_source",
    "describe_gene",
    "skeleton",
    "clip_tidy",
    "render_scalar",
]
