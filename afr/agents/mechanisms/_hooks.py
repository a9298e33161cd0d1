"""Every method the genome renders, by name: the hooks mechanisms touch, and the helpers they share.

One renderer per method, in the module of the mechanism (or the composer) that owns it; each returns
the method's source, or None when the genome leaves the hook to the baseline. Hooks that several slots
touch are composed from the whole genome each time: ``aggregate`` (:mod:`.aggregate`) and
``local_objective`` (:mod:`.objective`).
"""

from __future__ import annotations

from collections.abc import Callable

from . import aggregate, objective, scaffold, schedules, selection, variants
from ._base import Genome
from ._environment import Environment

HELPERS = ("round_progress",)
"""Methods the library owns besides the hooks."""

_RENDERERS: dict[str, Callable[[Genome], str | None]] = {
    "model_variant": variants.render_model_variant,
    "select_clients": selection.render_select_clients,
    "broadcast": scaffold.render_broadcast,
    "local_steps": schedules.render_local_steps,
    "client_lr": schedules.render_client_lr,
    "local_objective": objective.render_local_objective,
    "client_extras": scaffold.render_client_extras,
    "aggregate": aggregate.render_aggregate,
    "round_progress": schedules.render_round_progress,
}
"""The method renderers, by method name (every hook a mechanism touches, and the helpers)."""


def render_hooks(genome: Genome, env: Environment) -> dict[str, str]:
    """Source text of every method the genome needs (hooks and helpers), keyed by name."""
    rendered = {name: render(genome) for name, render in _RENDERERS.items()}
    return {name: text for name, text in rendered.items() if text is not None}
