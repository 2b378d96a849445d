"""search-specialist's web search turn by turn (bot/agents/web_turns.py): the tool is the same bytes on every turn
of a step until one searches, so the researcher's prompt cache holds; the run's cap is hard; a budget with room for
fewer searches offers fewer, and none when it has room for none (the result says so). The agent runtime on the
real anthropic client against the local Messages API, its prompt cache included (the error codes of a search, through
the webhook: tests/test_web_search_errors.py).
"""

from __future__ import annotations

import json
from typing import Any

from bot.agents import Budget, ModelMap
from bot.agents.models import SEARCH_RESULT_TOKENS, LocalLedger
from bot.sandbox.anthropic import FakeAnthropic, Reply
from tests.test_agents_common import REPO, analyze, claude, fake, gh, make_runtime  # noqa: F401
from tests.test_agents_runner import Recording, researcher, web_tools


def search_and_read(query: str) -> Reply:
    """A turn that searches the web, then asks for a file (a client tool): the step goes on to another turn."""
    return Reply([{"type": "server_tool_use", "name": "web_search", "input": {"query": query}},
                  {"type": "tool_use", "name": "read_file", "input": {"path": "README.md"}}], stop_reason="tool_use")


def notes(request: dict[str, Any]) -> str:
    return " ".join(b.get("text", "") for b in request["messages"][-1]["content"] if b.get("type") == "text")


def read_only() -> Reply:
    """A turn that only asks for a file: no search."""
    return Reply([{"type": "tool_use", "name": "read_file", "input": {"path": "README.md"}}], stop_reason="tool_use")


async def test_the_tool_changes_only_after_a_turn_that_searched_and_the_cache_is_read(
        fake: FakeAnthropic, claude, gh, sandbox) -> None:  # noqa: F811
    sandbox.add_issue(REPO, title="Integrate the payments API", body="")
    sandbox.set_file(REPO, "README.md", "# payments\n" + "Docs. " * 2000)
    budget = Budget(run_id="run-t")
    fake.script(search_and_read("a"), read_only(), analyze())
    outcome = await make_runtime(gh, claude, budget=budget, web_searches=5).run(researcher())
    assert outcome.ok, outcome.error
    assert [[t["max_uses"] for t in web_tools(r)] for r in fake.requests] == [[5], [4], [4]]
    tools = [json.dumps(r["tools"], sort_keys=True) for r in fake.requests]
    assert tools[1] == tools[2]  # a turn without a search leaves the tool as it was
    # The turn after the one without a search reads the whole earlier prefix from the cache.
    assert fake.usage_log[2]["cache_read_input_tokens"] > 0, fake.usage_log
    assert "This run has 4 web searches left." in notes(fake.requests[1])
    assert "web search" not in notes(fake.requests[2]).lower()
    assert fake.web.served == ["a"] and await budget.ledger.spent("searches:run:run-t") == 1


async def test_the_run_cap_is_hard_a_model_told_none_are_left_has_no_tool(
        fake: FakeAnthropic, claude, gh, sandbox) -> None:  # noqa: F811
    """Two searches a run: the first turn makes both; the next turns offer no web search at all (the API enforces
    max_uses, so the operator's cap cannot be passed by a model that ignores what it is told)."""
    sandbox.add_issue(REPO, title="t", body="")
    sandbox.set_file(REPO, "README.md", "# x\n")
    budget = Budget(run_id="run-p")
    both = Reply([*Reply.web_search("a", "b").content, {"type": "tool_use", "name": "read_file",
                                                          "input": {"path": "README.md"}}], stop_reason="tool_use")
    fake.script(both, read_only(), analyze())
    outcome = await make_runtime(gh, claude, budget=budget, web_searches=2).run(researcher())
    assert outcome.ok, outcome.error
    assert "web searches are used up" in notes(fake.requests[1])
    assert [[t["max_uses"] for t in web_tools(r)] for r in fake.requests] == [[2], [], []]
    assert fake.web.served == ["a", "b"] and await budget.ledger.spent("searches:run:run-p") == 2


async def test_a_budget_with_room_for_fewer_searches_offers_those(fake: FakeAnthropic, claude, gh,
                                                                  sandbox) -> None:  # noqa: F811
    sandbox.add_issue(REPO, title="t", body="")
    fake.script(analyze())
    probe = Recording()
    assert (await make_runtime(gh, claude, budget=Budget(ledger=probe)).run(researcher())).ok
    per_search = ModelMap().search_tokens("haiku") + SEARCH_RESULT_TOKENS
    budget = Budget(run_tokens=probe.asked[0] + 3 * per_search + 500)  # the call and three searches' worth, not four
    fake.script(analyze())
    outcome = await make_runtime(gh, claude, budget=budget, web_searches=4).run(researcher())
    assert outcome.ok, outcome.error
    assert [t["max_uses"] for t in web_tools(fake.requests[-1])] == [3]
    assert "Web search" not in str(outcome.result)


async def test_a_budget_without_room_for_one_search_runs_the_step_without_it_and_says_so(
        fake: FakeAnthropic, claude, gh, sandbox) -> None:  # noqa: F811
    sandbox.add_issue(REPO, title="t", body="")
    fake.script(analyze())
    probe = Recording()
    assert (await make_runtime(gh, claude, budget=Budget(ledger=probe)).run(researcher())).ok
    budget = Budget(run_tokens=probe.asked[0] + 1_000)  # the call fits; not one search's worth
    fake.script(analyze())
    outcome = await make_runtime(gh, claude, budget=budget, web_searches=4).run(researcher())
    assert outcome.ok, outcome.error
    assert web_tools(fake.requests[-1]) == []
    assert outcome.result is not None
    assert "Web search was not used: the budget had no room left for a search." in outcome.result["findings"]


class ParallelStep(LocalLedger):
    """A ledger where another step of the run reserves every search it has left just after this step began (steps
    of one wave start together; whichever reserves first holds them)."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap, self.taken = cap, False

    async def spent(self, key: str) -> int:
        got = await super().spent(key)
        if key.startswith("searches:run:") and not self.taken:
            self.taken = await self.reserve("the other step", self.cap, [(key, self.cap)])
        return got


async def test_searches_held_by_another_step_leave_this_one_without_the_tool_and_it_says_why(
        fake: FakeAnthropic, claude, gh, sandbox) -> None:  # noqa: F811
    sandbox.add_issue(REPO, title="t", body="")
    fake.script(analyze())
    outcome = await make_runtime(gh, claude, budget=Budget(ledger=ParallelStep(4)), web_searches=4).run(researcher())
    assert outcome.ok, outcome.error
    assert web_tools(fake.requests[-1]) == []  # no reservation, no tool: it cannot search
    assert "Web search is on" in str(fake.requests[-1]["messages"][0])  # four were left as the step began
    assert outcome.result is not None
    notes = [line for line in outcome.result["findings"] if line.startswith("Web search")]
    assert notes == ["Web search was not used: the run's other steps had made or were holding every search it had "
                     "left."]
