"""The structured task brief: built by the campaign from the profile and surface, read by every agent."""

from __future__ import annotations

import yaml

from afr.agents import AgentContext, TaskBrief
from afr.agents.mechanisms import environment, environment_from_brief
from afr.campaign._brief import task_brief
from afr.profiles import make_profile, profile_names
from afr.recipe import recipe_source
from afr.surface import render_profile_surface, surface_table


def brief_of(name: str) -> tuple[TaskBrief, str, str]:
    profile = make_profile(name).for_campaign()
    baseline = recipe_source(profile.baseline)
    table = surface_table(profile, baseline=baseline)
    doc = render_profile_surface(table, baseline)
    description = yaml.safe_dump(profile.describe(), sort_keys=False)
    return task_brief(profile, table, baseline, doc), description, doc


def test_evolve_reads_from_the_brief_what_it_used_to_parse_from_the_markdown() -> None:
    """On every shipped profile the typed brief gives the evolve agent the same environment as the old
    Markdown round trip (the text path stays for hand-made contexts)."""
    for name in profile_names():
        brief, description, doc = brief_of(name)
        parsed = environment(name, description, doc, {}, brief.baseline)
        assert environment_from_brief(brief, {}) == parsed, name


def test_brief_carries_the_typed_facts() -> None:
    brief, _, _ = brief_of("heart_disease")
    assert brief.profile == "heart_disease" and brief.baseline.class_name == "FedAvg"
    assert brief.mutable_hooks["aggregate"] == ("self", "global_params", "updates", "server_state")
    assert "lr" in brief.scalars and brief.scalars["lr"].low < brief.scalars["lr"].high
    assert "FedAvg" in brief.bases and "scalar" in brief.recipe_names and "torch" in brief.allowed_modules
    assert brief.control_extras and brief.rounds >= 1


def test_a_brief_restricted_by_the_profile_restricts_the_environment() -> None:
    brief, _, _ = brief_of("heart_disease")
    narrow = TaskBrief(
        profile=brief.profile,
        metric=brief.metric,
        higher_is_better=brief.higher_is_better,
        mutable_hooks={"aggregate": brief.mutable_hooks["aggregate"]},
        baseline=brief.baseline,
    )
    env = environment_from_brief(narrow)
    assert env.mutable_hooks == frozenset({"aggregate"}) and not env.control_extras
    assert all(set(g.mechanism.hooks) <= {"aggregate"} for g in env.options())


def test_a_hand_made_context_has_a_brief_with_every_hook() -> None:
    ctx = AgentContext("synthetic", "", "", True, "accuracy")
    brief = ctx.task_brief()
    assert brief.profile == "synthetic" and len(brief.mutable_hooks) == 8
