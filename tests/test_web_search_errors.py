"""Each error code the API's web search can answer (``web_search_tool_result_error``), through the webhook against
the local Messages API: the failed search is not billed nor counted against the run's cap, the step goes on, and
the research posted says how many searches failed and why, in words (the code is for operators).
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.sandbox.anthropic import FakeAnthropic, Reply
from bot.sandbox.anthropic.web_search import QUERY_CHARS
from bot.sandbox.team import Team, result
from tests.test_budget_ceilings import Start, start  # noqa: F401
from tests.test_web_search import started, step_title, web_tools
from tests.test_workflows_e2e import REPO, fake, issue_payload, send, team  # noqa: F401

ON = {"TRIAGE_LEAD_WEB_SEARCH": "on", "TRIAGE_LEAD_WEB_SEARCHES_PER_RUN": "3"}
CASES = {  # error code: (how the local API comes to answer it, what the research says)
    "too_many_requests": ("outage", "the search service was rate-limited"),
    "unavailable": ("outage", "the search service was unavailable"),
    "invalid_tool_input": ("", "the query was not valid"),
    "query_too_long": ("x" * (QUERY_CHARS + 1), "the query was too long"),
}


@pytest.mark.parametrize("code", sorted(CASES))
async def test_each_search_error_is_not_counted_and_the_research_says_it_failed(
        code: str, start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, _ = bot = await started(start, ON)
    cause, said = CASES[code]
    query = "sdk docs" if cause == "outage" else cause
    fake.web.outage = code if cause == "outage" else None
    turn = Reply.web_search(query, "sdk docs again", answer=result("analyze", findings=["read the repo instead"]))
    team.script["RESEARCH"] = [turn]
    await send(bot, sandbox, "issues", issue_payload(70, ["integration"]))
    research = [r for r in fake.requests if step_title(r) == "RESEARCH"]
    assert len(research) == 1 and web_tools(research[0])
    run = await rt.store.active_run(f"{REPO}#70")
    assert run is not None
    failed = 2 if cause == "outage" else 1  # the second query is a good one: only an outage fails it too
    assert fake.web.served == ([] if cause == "outage" else ["sdk docs again"])
    assert await rt.store.spent(f"searches:run:{run.id}") == 2 - failed  # a failed search is not billed
    assert run.data["usage"]["web_searches"] == 2 - failed
    posted = next(c["body"] for c in sandbox.comments(REPO, 70) if c["body"].startswith("#### RESEARCH"))
    assert f"Web search: {failed} search{'es' if failed > 1 else ''} failed ({said})." in posted, posted
    assert "_" not in code or code not in posted  # the API's code is for operators; people read what it means
