"""The compact prompt for small local models, and the context-size error, against the scripted server."""

from __future__ import annotations

from typing import Any

import pytest

from afr.agents import AgentContext, _prompt, make_agent
from afr.agents.llm import LLMAgent
from afr.errors import ConfigError
from afr.surface import validate
from tests._fake_openai import FakeOpenAI, Reply, Status
from tests.test_brief import brief_of
from tests.test_llm_agent import GOOD, config, whole

COMPACT_LIMIT = 2000
"""The compact prompt's budget in tokens (estimated at 4 characters per token)."""


def campaign_context(name: str = "heart_disease", **kw: Any) -> AgentContext:
    brief, description, doc = brief_of(name)
    return AgentContext(
        profile_name=name,
        profile_description=description,
        surface_doc=doc,
        higher_is_better=brief.higher_is_better,
        metric=brief.metric,
        baseline=brief.baseline,
        brief=brief,
        **kw,
    )


@pytest.mark.parametrize("name", ["heart_disease", "synthetic", "femnist", "shakespeare"])
def test_compact_prompt_is_under_2k_tokens_with_one_copy_of_the_baseline(name: str) -> None:
    ctx = campaign_context(name, baseline_score=0.5)
    messages = _prompt.opening_messages(ctx, "compact", "whole", 4000)
    text = "".join(m["content"] for m in messages)
    assert _prompt.approx_tokens(text) < COMPACT_LIMIT
    assert text.count("class FedAvg(Recipe)") == 1  # the baseline once
    assert "Rules:" in text and "10. " in text and "11. " not in text  # a ten-line rules summary
    assert "`aggregate(self, global_params, updates, server_state)`" in text
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]  # the example is a prior turn
    full = "".join(m["content"] for m in _prompt.opening_messages(ctx, "full", "whole", 4000))
    assert _prompt.approx_tokens(full) > 2 * _prompt.approx_tokens(text)


@pytest.mark.parametrize("name", ["heart_disease", "synthetic"])
def test_the_compact_example_passes_the_validator(name: str) -> None:
    from afr.profiles import make_profile
    from afr.surface import surface_table

    ctx = campaign_context(name)
    example = _prompt.compact_example(ctx)
    assert example is not None
    table = surface_table(make_profile(name).for_campaign(), baseline=ctx.baseline)
    report = validate(example[1], table)
    assert report.ok, report.in_brief()


def test_compact_example_follows_the_hooks_the_profile_opens() -> None:
    from dataclasses import replace

    ctx = campaign_context()
    assert ctx.brief is not None
    only_aggregate = replace(ctx.brief, mutable_hooks={"aggregate": ctx.brief.mutable_hooks["aggregate"]})
    narrowed = replace(ctx, brief=only_aggregate)
    note, source = _prompt.compact_example(narrowed) or ("", "")
    assert "def aggregate" in source and "local_objective" not in source
    system = _prompt.compact_system_message(narrowed)
    assert "`aggregate(" in system and "`local_objective(" not in system
    frozen = replace(ctx, brief=replace(ctx.brief, mutable_hooks={}))
    assert _prompt.compact_example(frozen) is None


def test_compact_prompt_history_is_short() -> None:
    from afr.agents import HistoryItem

    best = HistoryItem(3, "ok", 0.8, GOOD * 20, "", name="agent#3", note="prox term")
    failed = HistoryItem(4, "rejected", None, GOOD * 20, "", reasons=("x" * 5000,), name="agent#4")
    ctx = campaign_context(best=(best,), recent_failures=(failed,))
    text = _prompt.compact_system_message(ctx)
    assert "agent#3 scored 0.8: prox term" in text and "Latest failure, agent#4" in text
    assert _prompt.approx_tokens(text) < COMPACT_LIMIT


def test_agent_sends_the_compact_prompt_when_configured() -> None:
    with FakeOpenAI([whole(GOOD)]) as server:
        agent = make_agent(config(server, prompt="compact"))
        assert isinstance(agent, LLMAgent)
        proposals = agent.propose(campaign_context(), 1)
    assert len(proposals) == 1
    sent = server.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sum(_prompt.approx_tokens(m["content"]) for m in sent) < COMPACT_LIMIT


def test_unknown_prompt_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="agent.prompt=compact"):
        make_agent(config(prompt="tiny"))


@pytest.mark.parametrize(
    "message",
    [
        "the request exceeds the available context size, try increasing it",
        "Requested tokens (9000) exceed context window of 4096",
        "This model's maximum context length is 8192 tokens.",
    ],
)
def test_a_context_error_names_max_tokens_and_the_server_context(message: str) -> None:
    with FakeOpenAI([Status(400, message)]) as server, pytest.raises(ConfigError) as info:
        make_agent(config(server, prompt="compact", max_tokens=2048)).propose(campaign_context(), 1)
    text = f"{info.value} {info.value.fix}"
    assert "agent.max_tokens=2048" in text and "-c " in text and "context" in text
    assert "history_tokens" not in text
    assert len(server.requests) == 1


def test_local_yaml_defaults_fit_a_stock_server() -> None:
    from tests.test_llm_agent import load

    cfg = load("local")
    assert cfg["prompt"] == "compact" and cfg["max_tokens"] <= 2048
    assert load("claude")["prompt"] == "full" and load("openai")["prompt"] == "full"


def test_reply_is_usable_after_compact_prompt() -> None:
    with FakeOpenAI([Reply(whole(GOOD), prompt_tokens=900, completion_tokens=100)]) as server:
        agent = make_agent(config(server, prompt="compact"))
        (proposal,) = agent.propose(campaign_context(), 1)
    assert proposal.source == GOOD


# --- constrained output ------------------------------------------------------------------------------


def _rules(grammar: str) -> tuple[set[str], set[str]]:
    """(defined, referenced) rule names of a GBNF grammar (string literals and character classes aside)."""
    import re

    defined, used = set(), set()
    for line in grammar.splitlines():
        name, _, body = line.partition(" ::= ")
        defined.add(name.strip())
        body = re.sub(r'"(\\.|[^"\\])*"', " ", body)
        body = re.sub(r"\[(\\.|[^\]\\])*\]", " ", body)
        used |= set(re.findall(r"[A-Za-z][A-Za-z0-9_-]*", body))
    return defined, used


@pytest.mark.parametrize("shipped", [True, False])
def test_the_grammar_defines_every_rule_it_uses(shipped: bool) -> None:
    from dataclasses import replace

    from afr.agents._grammar import reply_grammar
    from afr.recipe import RecipeSource

    brief = campaign_context().task_brief()
    if not shipped:
        user = RecipeSource(
            text="class Mine(FedAvg):\n    pass\n", class_name="Mine", name="mine", label="m.py"
        )
        brief = replace(brief, baseline=user)
    grammar = reply_grammar(brief)
    defined, used = _rules(grammar)
    assert "root" in defined and used <= defined, used - defined
    base = brief.baseline.class_name
    assert f'base ::= "{base}"' in grammar and '```python\\n"' in grammar


def test_grammar_true_sends_it_with_every_call() -> None:
    with FakeOpenAI(["Only prose.", whole(GOOD)]) as server:
        agent = make_agent(config(server, prompt="compact", grammar=True, extra_body={"top_k": 40}))
        (proposal,) = agent.propose(campaign_context(), 1)
        bodies = list(server.requests)
    assert proposal.source == GOOD
    assert len(bodies) == 2 and all('base ::= "FedAvg"' in b["grammar"] and b["top_k"] == 40 for b in bodies)
    with FakeOpenAI([whole(GOOD)]) as server:
        make_agent(config(server, grammar=True, extra_body={"grammar": "root ::= x"})).propose(context_(), 1)
        assert server.requests[0]["grammar"] == "root ::= x"  # one given in extra_body wins
    with FakeOpenAI([whole(GOOD)]) as server:
        make_agent(config(server)).propose(context_(), 1)
        assert "grammar" not in server.requests[0]


def context_() -> AgentContext:
    return campaign_context()


@pytest.mark.parametrize(
    ("over", "match"),
    [({"grammar": "yes"}, "true or false"), ({"grammar": True, "edit_format": "search_replace"}, "whole")],
)
def test_bad_grammar_settings_are_config_errors(over: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_agent(config(**over))
