"""A reply block is a recipe only if Python's parser finds a class derived from the baseline in it."""

from __future__ import annotations

import pytest

from afr.agents._edits import ReplyError, extract_file, parse_reply
from tests._fake_openai import FakeOpenAI
from tests.test_llm_agent import GOOD, agent_for, context, whole

BASES = ("FedAvg", "FedProx")
COMMENT_ONLY = "# this class improves FedAvg\nx = 1\n"


def test_class_in_a_comment_is_no_recipe() -> None:
    """The old parser took the word `class ` in a comment for a recipe class."""
    reply = f"Idea.\n```python\n{COMMENT_ONLY}```\n"
    with pytest.raises(ReplyError, match="defines a class derived from `FedAvg`"):
        parse_reply(reply, "", bases=BASES)
    with pytest.raises(ReplyError, match="recipe class"):
        parse_reply(reply, "")


def test_class_in_a_string_is_no_recipe() -> None:
    code = 'DOC = """\nclass Fake(FedAvg):\n    pass\n"""\n'
    with pytest.raises(ReplyError):
        extract_file(f"```python\n{code}```\n", BASES)


def test_a_class_not_derived_from_the_baseline_is_no_recipe() -> None:
    code = "class Helper:\n    pass\n"
    with pytest.raises(ReplyError, match="derived from"):
        extract_file(f"```python\n{code}```\n", BASES)
    assert extract_file(f"```python\n{code}```\n") == code  # without bases, any class


def test_the_recipe_block_wins_over_a_later_non_recipe_block() -> None:
    reply = f"Idea.\n```python\n{GOOD}```\nUsage:\n```python\nclass Helper:\n    pass\n```\n"
    assert extract_file(reply, BASES) == GOOD


def test_derived_through_a_module_attribute_counts() -> None:
    code = "import afr.recipe\n\n\nclass Mine(afr.recipe.FedProx):\n    name = 'mine'\n"
    assert extract_file(f"```python\n{code}```\n", BASES) == code


def test_a_copy_of_the_base_is_the_base_the_class_after_it_is_the_recipe() -> None:
    base_only = "class FedAvg(Recipe):\n    name = 'x'\n"
    with pytest.raises(ReplyError):
        extract_file(f"```python\n{base_only}```\n", ("FedAvg", "Recipe"))
    both = base_only + "\n\nclass Mine(FedAvg):\n    name = 'mine'\n"
    assert extract_file(f"```python\n{both}```\n", ("FedAvg", "Recipe")) == both


def test_a_block_that_does_not_parse_says_where() -> None:
    with pytest.raises(ReplyError, match=r"not valid Python \(line 2"):
        extract_file("```python\nclass A(FedAvg):\n    def f(self\n```\n", BASES)


def test_unfenced_reply_needs_a_derived_class_too() -> None:
    with pytest.raises(ReplyError):
        parse_reply("Here:\n" + COMMENT_ONLY, "", bases=BASES)
    assert parse_reply("Here:\n" + GOOD, "", bases=BASES).source == GOOD


def test_the_agent_reasks_when_the_only_class_is_in_a_comment() -> None:
    with FakeOpenAI([f"Idea.\n```python\n{COMMENT_ONLY}```\n", whole(GOOD)]) as server:
        (proposal,) = agent_for(server).propose(context(), 1)
        assert proposal.source == GOOD
        reask = server.requests[1]["messages"][-1]["content"]
    assert "derived from `FedAvg`" in reask
