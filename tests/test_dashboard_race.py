"""The dashboard refresh's race guard (issue 17, point 1), on SQLite and on PostgreSQL: a refresh marks its
repository due (``mark_due`` returns the count of marks it read), edits, then clears the row only if nothing marked
it again meanwhile (``clear_due(repo, marks)``). A change another worker's job marks while the edit is in flight
is therefore still due after it, and the next pass shows it: the last change is never left unshown.

Through the webhook, against the sandbox GitHub: the refresher is the runtime's 15 s pass (``Runtime._dashboards``),
and the other worker's change is a real job (a new run on #31) delivered between the pass's edit and its clear.
PostgreSQL at 127.0.0.1:5432 (``TRIAGE_LEAD_TEST_POSTGRES``) runs the jobs on procrastinate workers; the test
skips, saying why, when no server answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from bot.run.runtime import Runtime
from bot.sandbox.team import Team
from bot.settings import Settings
from tests.board_setup import Clock, board, opted_in, waiting_run
from tests.conftest import INSTALLATION, load_fixture
from tests.test_workflows_e2e import REPO, fake, issue_payload, send, team  # noqa: F401


@pytest.fixture(params=["sqlite", "postgresql"])
async def both(request: Any, settings: Settings, fake: Any, team: Team, sandbox: Any,  # noqa: F811
               aiohttp_client: Any) -> AsyncIterator[tuple[Runtime, Any]]:
    """The bot on the test's SQLite file, or on a fresh PostgreSQL schema with one procrastinate worker."""
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    async with AsyncExitStack() as stack:
        s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url)
        if request.param == "postgresql":
            from tests.test_postgres_store import fresh_schema  # skips, saying why, when no server answers

            s = s.with_overrides(database_url=await stack.enter_async_context(fresh_schema()))
        rt = await Runtime(s, github_max_wait=5.0, github_backoff=0.01,
                           agent_options={"retry_base": 0.01, "max_retry_wait": 1.0}).start()
        stack.push_async_callback(rt.close)
        if request.param == "postgresql":
            from tests.test_postgres_worker import workers

            await stack.enter_async_context(workers(rt.store, rt.handle))  # type: ignore[arg-type]
        rt.deps.clock = Clock()
        yield rt, await aiohttp_client(rt.web_app())


def edits(sandbox: Any, number: int) -> int:
    return len([w for w in sandbox.writes if w.kind == "issue_edit" and w.number == number])


async def test_a_change_marked_while_the_pass_edits_stays_due_and_the_next_pass_shows_it(
        both: tuple[Runtime, Any], sandbox: Any, team: Team, monkeypatch: Any) -> None:  # noqa: F811
    rt, clock = both[0], both[0].deps.clock
    assert isinstance(clock, Clock)
    opted_in(sandbox, maintainer="write")
    await waiting_run(both, sandbox, 15)
    number = board(sandbox)["number"]
    await send(both, sandbox, "issues", issue_payload(30, ["api"]))  # within the minute: put off, due
    assert await rt.store.due_dashboards() == [(REPO, INSTALLATION)]

    real, raced = rt.store.clear_due, list[str]()

    async def clear_due(repo: str, marks: int | None = None) -> bool:
        if not raced:  # the pass's edit is made; before it clears, another worker's job
            raced.append(repo)
            await send(both, sandbox, "issues", issue_payload(31, ["api"]))  # its refresh: put off by the window
        return await real(repo, marks)
    monkeypatch.setattr(rt.store, "clear_due", clear_due)

    clock.later()
    await rt._dashboards()  # the runtime's 15 s pass
    assert raced, "the pass never cleared its mark"
    body = board(sandbox)["body"]
    assert "on #30" in body and "on #31" not in body  # the pass's edit: read before the other job's run began
    assert await rt.store.due_dashboards() == [(REPO, INSTALLATION)]  # the later mark kept the row due
    assert edits(sandbox, number) == 1

    clock.later()
    await rt._dashboards()
    assert "on #31" in board(sandbox)["body"]  # the later change, shown
    assert await rt.store.due_dashboards() == []
    await rt._dashboards()
    assert edits(sandbox, number) == 2  # and nothing made twice
