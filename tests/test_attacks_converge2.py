"""Today's web search turns attacked (commits b9e14d5, 9e1d624): a reply whose usage says odd things about the
searches it made (null, zero, negative, a string, a bool, a float, more than it made, more than any ledger holds),
search errors the bot has no words for, a step with no search left. The agent runtime on the real anthropic client
against the local Messages API; the dashboard's and the reviews' attacks are in tests/test_attacks_today.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.agents import Budget
from bot.agents.web_turns import WebSearchTurns, failures
from bot.sandbox.anthropic import FakeAnthropic, Reply
from tests.test_agents_common import REPO, analyze, claude, fake, gh, make_runtime  # noqa: F401
from tests.test_agents_runner import researcher, web_tools


def searched(*queries: str, usage: dict[str, Any] | None = None) -> Reply:
    """A turn that searches, then asks for a file (the step goes on), its usage as ``usage`` says."""
    return Reply([*Reply.web_search(*queries).content,
                  {"type": "tool_use", "name": "read_file", "input": {"path": "README.md"}}],
                 stop_reason="tool_use", usage=usage)


# ---- web search: what a reply's usage says ------------------------------------------------------------------

async def step_with_two_searches(count: Any, fake: FakeAnthropic, claude: Any, gh: Any, sandbox: Any,
                                 budget: Budget) -> Any:
    """A research step whose first turn makes two searches (their results in the reply), its usage saying
    ``count`` of them; then a turn reading a file, then the result. The run may make four."""
    sandbox.add_issue(REPO, title="t", body="")
    sandbox.set_file(REPO, "README.md", "# x\n")
    fake.script(searched("a", "b", usage={"server_tool_use": {"web_search_requests": count}}),
                Reply([{"type": "tool_use", "name": "read_file", "input": {"path": "README.md"}}],
                      stop_reason="tool_use"), analyze())
    return await make_runtime(gh, claude, budget=budget, web_searches=4).run(researcher())


@pytest.mark.parametrize("count", [None, 0, 10**30, 7])
async def test_a_null_zero_or_too_large_search_count_counts_the_searches_the_reply_shows(
        count: Any, fake: FakeAnthropic, claude, gh, sandbox) -> None:  # noqa: F811
    """The run's cap counts the two searches the reply shows: never none (the next turns would offer all four
    again, and the cap would be passed), never more than it made (10**30 fits no ledger column)."""
    budget = Budget(run_id="run-odd")
    outcome = await step_with_two_searches(count, fake, claude, gh, sandbox, budget)
    assert outcome.ok, outcome.error
    assert await budget.ledger.spent("searches:run:run-odd") == 2
    assert [[t["max_uses"] for t in web_tools(r)] for r in fake.requests] == [[4], [2], [2]]
    assert outcome.usage.web_searches == 2


@pytest.mark.parametrize("count", [-3, "2", True, 2.0])
async def test_a_search_count_that_is_no_count_fails_the_call_with_every_search_offered_counted(
        count: Any, fake: FakeAnthropic, claude, gh, sandbox) -> None:  # noqa: F811
    budget = Budget(run_id="run-bad")
    outcome = await step_with_two_searches(count, fake, claude, gh, sandbox, budget)
    assert not outcome.ok and outcome.error_kind == "api-error" and "@" not in str(outcome.error)
    assert await budget.ledger.spent("searches:run:run-bad") == 4  # answered, so maybe billed: all it was offered


async def test_usage_without_server_tool_use_still_counts_the_searches_made(
        fake: FakeAnthropic, claude, gh, sandbox) -> None:  # noqa: F811
    sandbox.add_issue(REPO, title="t", body="")
    sandbox.set_file(REPO, "README.md", "# x\n")
    budget = Budget(run_id="run-none")
    fake.script(searched("a", usage={"server_tool_use": None}), analyze())
    outcome = await make_runtime(gh, claude, budget=budget, web_searches=3).run(researcher())
    assert outcome.ok, outcome.error
    assert await budget.ledger.spent("searches:run:run-none") == 1


# ---- web search: errors and a budget with room for none -----------------------------------------------------

def test_an_unknown_or_hostile_error_code_is_reported_in_words_never_as_given() -> None:
    codes = ["quota_melted", "@octocat <!-- x -->", None, 7, {"a": 1}]
    content = [{"type": "web_search_tool_result", "content": {"type": "web_search_tool_result_error",
                                                              "error_code": c}} for c in codes]
    turns = WebSearchTurns(3)
    turns.made(content, 0, 3)
    assert failures(content) == ["other"] * 5
    assert turns.notes() == ["Web search: 5 searches failed (an error)."]


def test_a_step_with_no_search_left_is_offered_none_and_says_nothing() -> None:
    turns = WebSearchTurns(0)
    assert turns.offer() == 0 and turns.notes() == []

