"""The task brief a campaign hands its agent: built once from the profile and its surface table."""

from __future__ import annotations

import yaml

from ..agents import TaskBrief
from ..profiles import Profile
from ..recipe import RecipeSource
from ..surface import SurfaceTable

__all__ = ["task_brief"]


def task_brief(profile: Profile, table: SurfaceTable, baseline: RecipeSource, surface_doc: str) -> TaskBrief:
    """The typed facts every agent reads (see :class:`afr.agents.TaskBrief`)."""
    recipe_names = table.allowed_imports.get("afr.recipe") or frozenset()
    budget = table.budget
    return TaskBrief(
        profile=profile.name,
        metric=profile.metric_name,
        higher_is_better=profile.higher_is_better,
        description=yaml.safe_dump(profile.describe(), sort_keys=False),
        rounds=int(budget.rounds),
        local_steps=int(budget.local_steps),
        batch_size=int(budget.batch_size),
        clients=len(profile.training_client_names),
        model_variants=tuple(table.model_variants),
        mutable_hooks=dict(table.mutable_hooks),
        frozen_hooks=tuple(table.frozen_hooks),
        recipe_bases=tuple(table.recipe_bases),
        recipe_names=tuple(sorted(recipe_names)),
        allowed_modules=tuple(sorted(m for m in table.allowed_imports if not m.startswith(("afr.", "__")))),
        forbidden_names=tuple(sorted(table.forbidden_names)),
        upload_extras=dict(table.contract.upload_extras),
        download_extras=dict(table.contract.download_extras),
        scalars=dict(table.tunable_scalars),
        max_lines=table.max_lines,
        max_bytes=table.max_bytes,
        baseline=baseline,
        surface_doc=surface_doc,
    )
