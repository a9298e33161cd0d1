"""The LLM agent against a scripted OpenAI-compatible server on 127.0.0.1 (no network, < 30 s)."""

from __future__ import annotations

import ast
import dataclasses
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from afr.agents import AgentContext, HistoryItem, Proposal, Usage, make_agent
from afr.agents._edits import ReplyError, extract_file, parse_reply
from afr.agents.llm import DUMMY_API_KEY, LLMAgent
from afr.errors import ConfigError, EndpointError
from afr.recipe import RecipeSource, recipe_source
from tests._fake_openai import TIMEOUT, Delay, FakeOpenAI, Reply, Status

ROOT = Path(__file__).resolve().parents[1]
BASELINE = (ROOT / "afr" / "recipe" / "fedavg.py").read_text()
AGENT_CONF = ROOT / "afr" / "conf" / "agent"
FORBIDDEN = ("afr.engine", "afr.sandbox", "afr.ledger", "afr.budget", "afr.surface")

GOOD = '''"""FedAvg with a proximal term on the clients."""

from __future__ import annotations

from torch import Tensor, nn

from afr.recipe import FedAvg, LocalContext, proximal_term, scalar


class ProxAvg(FedAvg):
    name = "prox_avg"

    mu = scalar(0.01, 1e-4, 1.0, log=True)

    def local_objective(self, task_loss: Tensor, model: nn.Module, ctx: LocalContext) -> Tensor:
        return task_loss + self.mu / 2 * proximal_term(model, ctx.global_params)
'''

FIXED = GOOD.replace("0.01, 1e-4", "0.05, 1e-4")
FIXED2 = GOOD.replace("0.01, 1e-4", "0.1, 1e-4")
ERROR = (
    "candidate.py:12:8: [forbidden-name] 'open' is not allowed: it reaches code, files or interpreter "
    "internals; remove it (hooks receive everything a recipe may use as arguments)"
)


def whole(source: str, note: str = "Adds a proximal term so clients stay near the global model.") -> str:
    return f"{note}\n\n```python\n{source}```\n"


def sr(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n"


def context(**kw: Any) -> AgentContext:
    defaults: dict[str, Any] = {
        "profile_name": "synthetic",
        "profile_description": "name: synthetic\nrounds: 20\n",
        "surface_doc": "# Recipe surface\n\nSURFACE-RULES-MARKER: imports from afr.recipe, torch, math.\n",
        "higher_is_better": True,
        "metric": "accuracy",
        "baseline_score": 0.71,
    }
    return AgentContext(**{**defaults, **kw})


def config(server: FakeOpenAI | None = None, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "kind": "llm",
        "name": "test",
        "model": "test-model",
        "base_url": server.base_url if server is not None else "http://127.0.0.1:9/v1",
        "api_key_env": None,
        "temperature": 0.0,
        "max_tokens": 1000,
        "max_tokens_param": "max_tokens",
        "edit_format": "whole",
        "max_repairs": 2,
        "max_retries": 1,
        "timeout_s": 1.0,
        "backoff_s": 0.01,
        "history_tokens": 2000,
        "proposals_per_step": None,
        "price_prompt_per_mtok": 3.0,
        "price_completion_per_mtok": 15.0,
        "extra_body": {},
    }
    cfg.update(over)
    return cfg


def agent_for(server: FakeOpenAI, **over: Any) -> LLMAgent:
    agent = make_agent(config(server, **over))
    assert isinstance(agent, LLMAgent)
    return agent


def purposes(usage: list[Usage]) -> list[str]:
    return [u.meta["purpose"] for u in usage]


# --- proposing -----------------------------------------------------------------------------------------


def test_whole_file_reply_is_one_proposal_with_usage() -> None:
    with FakeOpenAI([Reply(whole(GOOD), prompt_tokens=1200, completion_tokens=300)]) as server:
        agent = agent_for(server)
        proposals = agent.propose(context(), 1)
    assert len(proposals) == 1
    proposal = proposals[0]
    assert proposal.source == GOOD
    assert proposal.note == "Adds a proximal term so clients stay near the global model."
    assert proposal.parent_id is None
    assert proposal.meta["model"] == "test-model"
    assert proposal.meta["edit_format"] == "whole"
    assert proposal.meta["raw_reply_chars"] == len(whole(GOOD))
    usage = agent.drain_usage()
    call = usage[0].call  # the call itself, for the ledger's call log
    assert call is not None and call.purpose == "propose" and call.reply == whole(GOOD)
    assert call.request["messages"] == server.requests[0]["messages"] and call.attempts == 1
    assert [dataclasses.replace(u, call=None) for u in usage] == [
        Usage(
            "test-model",
            1200,
            300,
            pytest.approx(1200 * 3.0 / 1e6 + 300 * 15.0 / 1e6),
            meta={"purpose": "propose", "agent": "test", "step": 0},
        )
    ]
    assert agent.drain_usage() == []
    body = server.requests[0]
    assert body["model"] == "test-model"
    assert body["temperature"] == 0.0 and body["max_tokens"] == 1000
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert "SURFACE-RULES-MARKER" in system["content"]
    assert BASELINE.strip() in system["content"]
    assert "name: synthetic" in system["content"]
    assert "rationale" in user["content"] and "```python" in user["content"]
    assert server.headers[0]["authorization"] == f"Bearer {DUMMY_API_KEY}"


def test_request_content_is_deterministic_and_lists_earlier_ideas() -> None:
    best = HistoryItem(
        7,
        "ok",
        0.83,
        GOOD,
        "--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n",
        note="prox idea",
        parent_id=None,
        name="agent#7",
    )
    failure = HistoryItem(
        9, "rejected", None, "bad", "", reasons=(ERROR,), note="used open()", name="agent#9"
    )
    ctx = context(best=(best,), recent_failures=(failure,), step=3)
    script = [whole(GOOD, "First idea."), whole(FIXED, "Second idea.")]
    with FakeOpenAI(script) as one, FakeOpenAI(list(script)) as two:
        assert len(agent_for(one).propose(ctx, 2)) == 2
        assert len(agent_for(two).propose(ctx, 2)) == 2
    assert one.requests == two.requests
    system = one.requests[0]["messages"][0]["content"]
    # the campaign's one name for each candidate, as on the console and in the report
    assert "### agent#7: validation accuracy = 0.83" in system and "prox idea" in system
    assert "### agent#9 (rejected)" in system and ERROR in system
    assert "(agent#7, validation accuracy 0.83" in one.requests[0]["messages"][1]["content"]
    assert "First idea." not in one.requests[0]["messages"][1]["content"]
    assert "- First idea." in one.requests[1]["messages"][1]["content"]
    assert "proposal 2 of 2 in step 4" in one.requests[1]["messages"][1]["content"]


USER_BASELINE = """from afr.recipe import FedAvg, scalar


class Damped(FedAvg):
    name = "damped"

    damping = scalar(0.8, 0.1, 1.0)
"""


@pytest.mark.parametrize("edit_format", ["whole", "search_replace"])
def test_the_prompt_names_the_baseline(edit_format: str) -> None:
    fedprox = (ROOT / "afr" / "recipe" / "fedprox.py").read_text()
    shipped = context(baseline=recipe_source("fedprox"))
    users = context(baseline=RecipeSource.from_text(USER_BASELINE, "recipes/damped.py"))
    with FakeOpenAI([whole(GOOD), whole(FIXED)]) as server:
        agent = agent_for(server, edit_format=edit_format)
        agent.propose(shipped, 1)
        agent.propose(users, 1)
    (system, user), (user_system, user_user) = (
        [m["content"] for m in request["messages"]] for request in server.requests
    )
    assert "fedavg.py" not in system + user and "fedavg.py" not in user_system + user_user
    assert "## Baseline recipe `FedProx` (`afr/recipe/fedprox.py`" in system and fedprox.strip() in system
    assert (
        "(normally `FedProx`, the baseline)" in system and "from afr.recipe import FedProx, scalar" in system
    )
    assert "Baseline (FedProx, default scalars): 0.71" in system
    # a user's file: named, shown, and every candidate must contain its code (its class is not importable)
    assert "## Baseline recipe `Damped` (the user's file `recipes/damped.py`" in user_system
    assert USER_BASELINE.strip() in user_system
    assert "it cannot be imported, so every candidate must contain the baseline's code" in user_system
    if edit_format == "search_replace":
        assert (
            "Your SEARCH/REPLACE blocks apply to this parent file (the baseline, recipes/damped.py)"
            in user_user
        )
        assert "edit its code in place (its class `Damped` cannot be imported" in user_system


def test_request_fields_follow_the_config() -> None:
    over = {"temperature": None, "max_tokens_param": "max_completion_tokens", "extra_body": {"top_k": 40}}
    with FakeOpenAI([whole(GOOD)]) as server:
        agent_for(server, **over).propose(context(), 1)
    body = server.requests[0]
    assert "temperature" not in body and "max_tokens" not in body
    assert body["max_completion_tokens"] == 1000 and body["top_k"] == 40


def test_history_is_cut_to_the_budget() -> None:
    big = "+" + "x" * 200 + "\n"
    items = tuple(HistoryItem(i, "ok", 0.5, GOOD + big * 60, big * 80, note=f"idea {i}") for i in range(20))
    with FakeOpenAI([whole(GOOD)]) as server:
        agent_for(server, history_tokens=3000).propose(context(best=items), 1)
    system = server.requests[0]["messages"][0]["content"]
    assert "more characters cut" in system and "more left out for length" in system
    assert len(system) < len(BASELINE) + 3000 * 4 + 12000


def test_proposals_per_step_caps_n() -> None:
    with FakeOpenAI([whole(GOOD), whole(FIXED), whole(FIXED2)]) as server:
        proposals = agent_for(server, proposals_per_step=2).propose(context(), 4)
    assert [p.source for p in proposals] == [GOOD, FIXED]
    assert len(server.requests) == 2


def test_search_replace_reply_is_applied_to_the_baseline() -> None:
    signature = (
        "    def local_objective(self, task_loss: Tensor, model: nn.Module, ctx: LocalContext) -> Tensor:"
    )
    reply = (
        "Scale the task loss.\n\n```\n"
        + sr(f"{signature}\n        return task_loss", f"{signature}\n        return 0.5 * task_loss")
        # whitespace differs from the file: matched line by line, re-indented to the file's indentation
        + sr(
            'def model_variant(self) -> str:\n    return   "default"',
            'def model_variant(self) -> str:\n    return "mlp"',
        )
        + "```\n"
    )
    expected = BASELINE.replace("        return task_loss\n", "        return 0.5 * task_loss\n").replace(
        '        return "default"', '        return "mlp"'
    )
    assert expected != BASELINE
    with FakeOpenAI([reply]) as server:
        proposals = agent_for(server, edit_format="search_replace").propose(context(), 1)
    assert [p.source for p in proposals] == [expected]
    assert proposals[0].note == "Scale the task loss."
    assert proposals[0].meta["edit_format"] == "search_replace"
    user = server.requests[0]["messages"][1]["content"]
    assert "the baseline" in user and BASELINE.strip() in user and "SEARCH/REPLACE" in user


def test_search_replace_against_the_best_candidate_sets_parent() -> None:
    best = HistoryItem(5, "ok", 0.9, GOOD, "diff", note="prox")
    reply = "Raise mu.\n" + sr(
        "    mu = scalar(0.01, 1e-4, 1.0, log=True)", "    mu = scalar(0.05, 1e-4, 1.0, log=True)"
    )
    with FakeOpenAI([reply]) as server:
        proposals = agent_for(server, edit_format="search_replace").propose(context(best=(best,)), 1)
    assert proposals[0].source == FIXED
    assert proposals[0].parent_id == 5
    assert "candidate 5" in server.requests[0]["messages"][1]["content"]


def test_unmatched_block_is_malformed_and_reasked_with_the_parse_error() -> None:
    bad = "Try this.\n" + sr("    return nothing_like_this", "    return 1")
    good = "Scale the loss.\n" + sr("        return task_loss", "        return 0.5 * task_loss")
    with FakeOpenAI([bad, good]) as server:
        agent = agent_for(server, edit_format="search_replace")
        proposals = agent.propose(context(), 1)
    assert [p.source for p in proposals] == [BASELINE.replace("return task_loss", "return 0.5 * task_loss")]
    assert len(server.requests) == 2
    messages = server.requests[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == bad
    assert "SEARCH/REPLACE block 1 does not match the parent file" in messages[3]["content"]
    assert "return nothing_like_this" in messages[3]["content"]
    assert purposes(agent.drain_usage()) == ["propose", "retry"]


def test_prose_twice_gives_no_proposal_and_no_exception(caplog: pytest.LogCaptureFixture) -> None:
    with FakeOpenAI(["I would add momentum.", "Momentum on the server, really."]) as server:
        agent = agent_for(server)
        with caplog.at_level(logging.WARNING, logger="afr.agents.llm"):
            assert agent.propose(context(), 1) == []
    assert len(server.requests) == 2
    assert "no ```python code block" in server.requests[1]["messages"][-1]["content"]
    assert "unusable reply" in caplog.text
    assert purposes(agent.drain_usage()) == ["propose", "retry"]


def test_malformed_slot_does_not_stop_the_next() -> None:
    with FakeOpenAI(["prose", "more prose", whole(GOOD)]) as server:
        proposals = agent_for(server).propose(context(), 2)
    assert [p.source for p in proposals] == [GOOD]
    assert len(server.requests) == 3


def test_empty_reply_cut_at_the_token_limit_is_malformed() -> None:
    with FakeOpenAI([Reply("", finish_reason="length"), whole(GOOD)]) as server:
        proposals = agent_for(server).propose(context(), 1)
    assert [p.source for p in proposals] == [GOOD]
    assert "token limit" in server.requests[1]["messages"][-1]["content"]


def test_missing_usage_counts_zero() -> None:
    with FakeOpenAI([Reply(whole(GOOD), usage=False)]) as server:
        agent = agent_for(server)
        agent.propose(context(), 1)
    [usage] = agent.drain_usage()
    assert (usage.prompt_tokens, usage.completion_tokens, usage.money_usd) == (0, 0, 0.0)


# --- transport errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [429, 500, TIMEOUT], ids=["429", "500", "timeout"])
def test_transient_failure_then_good_reply(failure: Any) -> None:
    with FakeOpenAI([failure, whole(GOOD)]) as server:
        agent = agent_for(server)
        proposals = agent.propose(context(), 1)
    assert [p.source for p in proposals] == [GOOD]
    assert len(server.requests) == 2
    assert server.requests[0] == server.requests[1]
    assert purposes(agent.drain_usage()) == ["propose"]


def test_one_retry_layer_makes_one_plus_max_retries_attempts() -> None:
    with FakeOpenAI([500, 500, whole(GOOD)]) as server:  # no client retries under ours: 3 attempts in all
        proposals = agent_for(server, max_retries=2).propose(context(), 1)
    assert [p.source for p in proposals] == [GOOD]
    assert len(server.requests) == 3


def test_exhausted_retries_give_no_proposal_one_line_and_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    with FakeOpenAI([503] * 4 + [whole(GOOD)] * 3) as server:
        agent = agent_for(server, max_retries=1, max_outage_calls=2)
        with caplog.at_level(logging.DEBUG):
            assert agent.propose(context(), 3) == []
    assert len(server.requests) == 2  # 1 + 1 retry, one layer; the later slots are not tried
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(shown) == 1, [r.getMessage() for r in shown]  # one line per failed call, no retry chatter
    assert "failed after 2 tries" in shown[0].getMessage()
    assert agent.outage == "scripted error"
    assert agent.sustained_outage() == ""  # one outage call of the two allowed
    [usage] = agent.drain_usage()  # booked with no tokens, so the ledger shows the outage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.meta["outage"]) == (0, 0, "scripted error")


def test_sustained_outage_names_the_endpoint_and_an_answer_resets_it() -> None:
    with FakeOpenAI([503, 503, whole(GOOD), 503]) as server:
        agent = agent_for(server, max_retries=0, max_outage_calls=2)
        assert agent.propose(context(), 1) == [] and agent.sustained_outage() == ""
        assert agent.propose(context(), 1) == []
        assert server.base_url in agent.sustained_outage() and "2 calls in a row" in agent.sustained_outage()
        assert [p.source for p in agent.propose(context(), 1)] == [GOOD]
        assert (agent.outage, agent.sustained_outage()) == ("", "")
        assert agent.propose(context(), 1) == [] and agent.sustained_outage() == ""


def test_pauses_double_through_an_outage_across_calls_and_reset_on_an_answer() -> None:
    import threading

    pauses: list[float] = []

    class Recorded(threading.Event):  # the agent pauses with _cancelled.wait(pause): record, do not wait
        def wait(self, timeout: float | None = None) -> bool:
            pauses.append(float(timeout or 0.0))
            return False

    with FakeOpenAI([503, 503, 503, 503, whole(GOOD), 503, whole(GOOD)]) as server:
        agent = agent_for(server, max_retries=1, backoff_s=1.0, max_outage_calls=9)
        agent._cancelled = Recorded()
        assert agent.propose(context(), 1) == [] and pauses == [1.0]  # one call: 2 attempts, 1 pause
        assert agent.propose(context(), 1) == [] and pauses == [1.0, 2.0, 4.0]  # the outage goes on
        assert len(agent.propose(context(), 1)) == 1 and pauses == [1.0, 2.0, 4.0, 8.0]
        assert len(agent.propose(context(), 1)) == 1 and pauses == [1.0, 2.0, 4.0, 8.0, 1.0]  # reset
    assert len(server.requests) == 7


def test_an_unparseable_reply_is_no_outage() -> None:
    with FakeOpenAI(["prose only", "still prose"]) as server:
        agent = agent_for(server)
        assert agent.propose(context(), 1) == []
    assert agent.outage == ""  # the model answered: a fruitless proposal, the campaign counts it


def test_retry_after_is_honoured_and_capped() -> None:
    from afr.agents.llm import MAX_BACKOFF_S

    with FakeOpenAI([Status(429, headers={"Retry-After": "0"}), whole(GOOD)]) as server:
        # backoff_s=1000 would pause ~17 min; the server's Retry-After: 0 is taken instead
        proposals = agent_for(server, backoff_s=1000.0).propose(context(), 1)
    assert [p.source for p in proposals] == [GOOD]
    assert MAX_BACKOFF_S <= 60


def test_unreachable_endpoint_gives_no_proposal() -> None:
    with FakeOpenAI() as server:
        url = server.base_url
    agent = make_agent(config(None, base_url=url, max_retries=0))
    assert agent.propose(context(), 2) == []


def test_authentication_error_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFR_TEST_LLM_KEY", "sk-wrong")
    with FakeOpenAI([Status(401, "invalid x-api-key"), whole(GOOD)]) as server:
        agent = agent_for(server, api_key_env="AFR_TEST_LLM_KEY")
        with pytest.raises(ConfigError, match="AFR_TEST_LLM_KEY") as info:
            agent.propose(context(), 1)
    assert len(server.requests) == 1  # not retried
    assert "invalid x-api-key" in str(info.value)
    assert server.headers[0]["authorization"] == "Bearer sk-wrong"


def test_unknown_model_is_a_config_error() -> None:
    with (
        FakeOpenAI([Status(404, "model 'nope' not found")]) as server,
        pytest.raises(ConfigError, match="model"),
    ):
        agent_for(server, model="nope").propose(context(), 1)


# --- repairing -----------------------------------------------------------------------------------------


def test_repair_sends_messages_verbatim_until_max_repairs() -> None:
    script = [whole(GOOD), whole(FIXED, "Removed open()."), whole(FIXED2, "Second fix.")]
    with FakeOpenAI(script) as server:
        agent = agent_for(server, max_repairs=2)
        ctx = context()
        [proposal] = agent.propose(ctx, 1)
        fixed = agent.repair(ctx, proposal, [ERROR, "candidate.py:3:1: [import-not-allowed] `import os`"])
        assert fixed is not None and fixed.source == FIXED
        assert fixed.note == proposal.note and fixed.meta["repair_note"] == "Removed open()."
        assert fixed.parent_id is None  # the campaign links it to the rejected candidate
        again = agent.repair(ctx, fixed, ["run-time failure: non-finite loss in round 3"])
        assert again is not None and again.source == FIXED2
        assert agent.repair(ctx, again, [ERROR]) is None  # max_repairs used: no request
    assert len(server.requests) == 3
    messages = server.requests[1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == whole(GOOD)
    assert f"{ERROR}\ncandidate.py:3:1: [import-not-allowed] `import os`" in messages[3]["content"]
    last = server.requests[2]["messages"]
    assert len(last) == 6 and "run-time failure: non-finite loss in round 3" in last[5]["content"]
    assert purposes(agent.drain_usage()) == ["propose", "repair", "repair"]


def test_reask_counts_as_a_repair_try() -> None:
    with FakeOpenAI(["prose only", whole(GOOD), whole(FIXED)]) as server:
        agent = agent_for(server, max_repairs=2)
        [proposal] = agent.propose(context(), 1)
        fixed = agent.repair(context(), proposal, [ERROR])
        assert fixed is not None and fixed.source == FIXED
        assert agent.repair(context(), fixed, [ERROR]) is None
    assert len(server.requests) == 3


def test_repair_with_a_malformed_reply_gives_none() -> None:
    with FakeOpenAI([whole(GOOD), "sorry, no code", "still none"]) as server:
        agent = agent_for(server, max_repairs=3)
        [proposal] = agent.propose(context(), 1)
        assert agent.repair(context(), proposal, [ERROR]) is None
    assert len(server.requests) == 3


def test_repair_of_an_unknown_proposal_starts_from_the_file() -> None:
    with FakeOpenAI([whole(FIXED, "Fixed.")]) as server:
        agent = agent_for(server)
        fixed = agent.repair(context(), Proposal(GOOD, parent_id=12, note="prox"), [ERROR])
    assert fixed is not None and fixed.source == FIXED and fixed.note == "prox"
    system, user = server.requests[0]["messages"]
    assert system["role"] == "system" and "candidate 12" in user["content"]
    assert GOOD.strip() in user["content"] and ERROR in user["content"]


def test_repair_with_search_replace_edits_the_current_file() -> None:
    reply = "Smaller mu.\n" + sr(
        "    mu = scalar(0.01, 1e-4, 1.0, log=True)", "    mu = scalar(0.05, 1e-4, 1.0, log=True)"
    )
    with FakeOpenAI([whole(GOOD), reply]) as server:
        agent = agent_for(server, edit_format="search_replace")
        [proposal] = agent.propose(context(), 1)
        fixed = agent.repair(context(), proposal, [ERROR])
    assert fixed is not None and fixed.source == FIXED
    assert GOOD.strip() in server.requests[1]["messages"][-1]["content"]


# --- the endpoint check (campaign preflight) and cancelling ---------------------------------------------


def closed_port_url() -> str:
    with FakeOpenAI() as server:
        return server.base_url  # nothing listens there any more


def test_check_endpoint_refuses_an_unreachable_server_in_one_line() -> None:
    url = closed_port_url()
    agent = make_agent(config(None, base_url=url))
    with pytest.raises(EndpointError) as info:
        agent.check_endpoint()
    message = info.value.message
    assert len(message.splitlines()) == 1
    assert url in message and "agent.base_url=" in message and "start the server" not in message


def test_check_endpoint_with_the_model_listed_makes_no_chat_call() -> None:
    with FakeOpenAI([whole(GOOD)]) as server:
        agent_for(server, model=server.model).check_endpoint()
    assert server.requests == [] and server.remaining == 1


def test_check_endpoint_asks_one_token_when_the_model_is_not_listed() -> None:
    with FakeOpenAI(["OK"]) as server:  # e.g. llama-server: lists its file name, serves any model name
        agent_for(server, model="local").check_endpoint()
    [request] = server.requests
    assert request["model"] == "local" and request["max_tokens"] == 1


def test_check_endpoint_refuses_an_unknown_model() -> None:
    with FakeOpenAI([Status(404, "model 'nope' not found")]) as server, pytest.raises(EndpointError) as info:
        agent_for(server, model="nope").check_endpoint()
    assert "'nope'" in info.value.message and server.model in info.value.message
    assert "agent.model=" in info.value.message and len(info.value.message.splitlines()) == 1


def test_check_endpoint_refuses_a_bad_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFR_TEST_LLM_KEY", "sk-wrong")
    with (
        FakeOpenAI([Status(401, "invalid x-api-key")]) as server,
        pytest.raises(ConfigError, match="AFR_TEST_LLM_KEY"),
    ):
        agent_for(server, model="other", api_key_env="AFR_TEST_LLM_KEY").check_endpoint()


@pytest.mark.parametrize("answer", [Status(503, "loading model"), TIMEOUT, Status(400, "bad param")])
def test_check_endpoint_lets_a_busy_or_picky_server_through(answer: Any) -> None:
    """GET /models was answered: a slow, busy or picky chat answer is the first real call's business."""
    with FakeOpenAI([answer]) as server:
        agent_for(server, model="other").check_endpoint()
    assert len(server.requests) == 1


def test_check_endpoint_leaves_a_missing_key_to_check_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AFR_TEST_LLM_KEY", raising=False)
    agent = make_agent(config(None, base_url=closed_port_url(), api_key_env="AFR_TEST_LLM_KEY"))
    agent.check_endpoint()  # no network: check_ready says what is missing
    assert agent._client is None


def test_evolve_has_no_endpoint() -> None:
    agent = make_agent(load("evolve"))
    agent.check_endpoint()
    assert agent.sustained_outage() == "" and agent.outage == ""


def test_cancel_ends_a_call_in_a_worker_thread_at_once() -> None:
    """A run-time repair asks from a worker thread; Ctrl-C in the main thread cancels it (the campaign calls
    cancel()), instead of waiting for the request's timeout."""
    import threading

    arrived = threading.Event()

    def hang(body: dict[str, Any]) -> Any:
        arrived.set()
        return Delay(600)

    result: list[Any] = []
    with FakeOpenAI([hang]) as server:
        agent = agent_for(server, timeout_s=600.0)
        worker = threading.Thread(
            target=lambda: result.append(agent.repair(context(), Proposal(GOOD), [ERROR]))
        )
        worker.start()
        assert arrived.wait(60), "the request never reached the server"
        agent.cancel()
        worker.join(timeout=60)  # a deadlock guard, not a speed assertion: the hang is 600 s
        assert not worker.is_alive()
    assert result == [None] and agent.drain_usage() == []
    assert agent.propose(context(), 1) == []  # cancelled for good: no new call
    assert len(server.requests) == 1


# --- readiness and configuration ---------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    cfg = OmegaConf.to_container(OmegaConf.load(AGENT_CONF / f"{name}.yaml"), resolve=True)
    assert isinstance(cfg, dict)
    return cfg


@pytest.mark.parametrize(
    ("name", "variable"), [("claude", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY")]
)
def test_check_ready_needs_the_key(monkeypatch: pytest.MonkeyPatch, name: str, variable: str) -> None:
    monkeypatch.delenv(variable, raising=False)
    agent = make_agent(load(name))
    with pytest.raises(ConfigError) as info:
        agent.check_ready()
    first = str(info.value).splitlines()[0]
    assert first == f"agent {name!r} needs the environment variable {variable}"
    assert "agent=evolve" in str(info.value)
    monkeypatch.setenv(variable, "   ")
    with pytest.raises(ConfigError, match=variable):
        agent.check_ready()
    monkeypatch.setenv(variable, "sk-test")
    agent.check_ready()
    assert agent._client is None  # no client, no network call


def test_local_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    agent = make_agent(load("local"))
    agent.check_ready()
    assert isinstance(agent, LLMAgent) and agent.base_url == "http://127.0.0.1:8080/v1"


REQUIRED = {
    "kind",
    "name",
    "model",
    "base_url",
    "api_key_env",
    "temperature",
    "max_tokens",
    "edit_format",
    "max_repairs",
    "max_retries",
    "timeout_s",
    "backoff_s",
    "price_prompt_per_mtok",
    "price_completion_per_mtok",
    "proposals_per_step",
}


@pytest.mark.parametrize("name", ["claude", "openai", "local"])
def test_agent_yaml_has_the_required_keys(name: str) -> None:
    cfg = load(name)
    assert set(cfg) >= REQUIRED, REQUIRED - set(cfg)
    assert cfg["kind"] == "llm" and cfg["name"] == name
    assert cfg["edit_format"] in ("whole", "search_replace")
    assert cfg["max_repairs"] >= 1 and cfg["max_retries"] >= 1
    assert isinstance(make_agent(cfg), LLMAgent)
    if name == "local":
        assert cfg["api_key_env"] is None and cfg["model"] == "local"
        assert cfg["price_prompt_per_mtok"] == cfg["price_completion_per_mtok"] == 0
    else:
        assert cfg["price_prompt_per_mtok"] > 0 and cfg["price_completion_per_mtok"] > 0
    if name == "claude":
        assert cfg["base_url"] == "https://api.anthropic.com/v1/"
    if name == "openai":
        assert cfg["base_url"] is None


def test_hydra_overrides_reach_the_agent(tmp_path: Path) -> None:
    """``agent=openai agent.model=...`` as with afr/conf/config.yaml (its ``agent: null`` default)."""
    from hydra import compose, initialize_config_dir

    shutil.copytree(AGENT_CONF, tmp_path / "agent")
    (tmp_path / "config.yaml").write_text("defaults:\n  - agent: null\n  - _self_\n")
    overrides = ["agent=openai", "agent.model=gpt-test", "agent.base_url=http://127.0.0.1:1/v1"]
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    agent_cfg = OmegaConf.to_container(cfg.agent, resolve=True)
    assert isinstance(agent_cfg, dict)
    agent = make_agent(agent_cfg)
    assert isinstance(agent, LLMAgent)
    assert (agent.model, agent.base_url, agent.api_key_env) == (
        "gpt-test",
        "http://127.0.0.1:1/v1",
        "OPENAI_API_KEY",
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [("edit_format", "diff"), ("max_tokens_param", "tokens"), ("max_repairs", -1), ("timeout_s", "fast")],
)
def test_bad_config_values_are_config_errors(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        make_agent(config(None, **{key: value}))


# --- reply parsing -------------------------------------------------------------------------------------


def test_whole_file_takes_the_last_python_block_with_a_class() -> None:
    reply = (
        "Idea.\n```python\nclass Old(FedAvg):\n    pass\n```\nthen\n```\nclass New(FedAvg):\n    pass\n```\n"
        "```bash\npip install x\n```\n```python\nx = 1\n```\n"
    )
    assert extract_file(reply) == "class New(FedAvg):\n    pass\n"


def test_whole_file_without_fences_strips_leading_prose() -> None:
    assert parse_reply("Here it is:\n" + GOOD, BASELINE).source == GOOD


def test_unclosed_fence_is_accepted_only_if_it_parses() -> None:
    assert extract_file("```python\n" + GOOD) == GOOD
    with pytest.raises(ReplyError, match="never closed"):
        extract_file("```python\n" + GOOD + "    def broken(self\n")


def test_note_skips_labels_and_markdown() -> None:
    assert parse_reply("**Rationale:** use momentum.\n\n" + "```python\n" + GOOD + "```", "").note == (
        "use momentum."
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (sr("    def select_clients", "x"), None),
        (sr("        return task_loss\n", "        return 2 * task_loss") + sr("", "x"), "empty SEARCH part"),
        (sr("        return max_steps", "        return max_steps"), "unchanged"),
        ("<<<<<<< SEARCH\n        return task_loss\n>>>>>>> REPLACE\n", "no '=======' line"),
        ("<<<<<<< SEARCH\n        return task_loss\n=======\n        return 1\n", "not closed"),
    ],
)
def test_search_replace_errors(reply: str, message: str | None) -> None:
    if message is None:  # a partial line does not match
        with pytest.raises(ReplyError, match="does not match"):
            parse_reply(reply, BASELINE)
        return
    with pytest.raises(ReplyError, match=message):
        parse_reply(reply, BASELINE)


def test_ambiguous_search_is_an_error() -> None:
    parent = "class A(FedAvg):\n    def f(self):\n        return 1\n\n    def g(self):\n        return 1\n"
    with pytest.raises(ReplyError, match="matches 2 places"):
        parse_reply(sr("        return 1", "        return 2"), parent)


# --- boundaries ------------------------------------------------------------------------------------------


def test_agent_modules_import_no_forbidden_afr_module() -> None:
    for name in ("llm.py", "_prompt.py", "_edits.py"):
        tree = ast.parse((ROOT / "afr" / "agents" / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = "afr" if node.level == 2 else "afr.agents" if node.level == 1 else ""
                modules = [".".join(p for p in (base, node.module or "") if p)]
                modules += [f"{modules[0]}.{alias.name}" for alias in node.names]
            else:
                continue
            for module in modules:
                assert not module.startswith(FORBIDDEN), f"{name} imports {module}"
    code = (
        "import sys, afr.agents.llm, afr.agents._prompt, afr.agents._edits\n"
        f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
