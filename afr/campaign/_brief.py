"""What a campaign and its agent exchange besides candidates: the task brief it hands the agent (built once
from the profile and its surface table), and the calls the agent reports back (written to the ledger)."""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from ..agents import TaskBrief, Usage
from ..ledger import Ledger
from ..profiles import Profile
from ..recipe import RecipeSource
from ..surface import SurfaceTable

__all__ = ["task_brief", "record_usage"]


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


def record_usage(ledger: Ledger, campaign_id: int, agent: str, usages: Iterable[Usage]) -> None:
    """Book each model call's cost, and log the call itself (request, reply, tokens, latency, purpose)."""
    for usage in usages:
        cost_id = ledger.add_cost(
            campaign_id,
            arm="agent",
            kind="llm",
            model=usage.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            money_usd=usage.money_usd,
            meta=dict(usage.meta),
        )
        if (call := usage.call) is not None:
            ledger.add_llm_call(
                campaign_id,
                arm="agent",
                agent=agent,
                model=usage.model,
                purpose=call.purpose,
                step=usage.meta.get("step"),
                request=dict(call.request),
                reply=call.reply,
                finish_reason=call.finish_reason,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                latency_s=call.latency_s,
                attempts=call.attempts,
                error=call.error,
                started_at=call.started_at,
                finished_at=call.finished_at,
                cost_id=cost_id,
            )
