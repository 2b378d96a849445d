"""The dashboard's state in the store (issue 17, point 1): a refresh put off by the one-edit-a-minute window
survives a restart and is made by the runtime's periodic pass; a tick acted on is unticked exactly once, even when
another tick of the same box lands while an edit is in flight; and a tick on PostgreSQL, through procrastinate
workers (skipped, saying why, without a server).

Through the webhook, against the sandbox GitHub and the local Messages API, as tests/test_dashboard.py.
"""

from __future__ import annotations

from typing import Any

from bot.core import dashboard as D
from bot.run import dashboard, dashboard_board, pipeline
from bot.sandbox.team import Team
from bot.settings import Settings
from tests.board_setup import (  # noqa: F401
    Clock,
    board,
    box_of,
    clock,
    deliver,
    edited,
    opted_in,
    tick,
    ticked,
    waiting_board,
    waiting_run,
)
from tests.conftest import INSTALLATION
from tests.test_budget_ceilings import Start, start  # noqa: F401  (the start fixture: runtimes on one database)
from tests.test_workflows_e2e import REPO, bot, fake, issue_payload, posts, send, team  # noqa: F401


async def test_a_refresh_put_off_before_a_restart_is_made_by_the_pass_after_it(
        start: Start, sandbox: Any, team: Team) -> None:  # noqa: F811
    opted_in(sandbox, maintainer="write")
    first = await start()
    at = Clock()
    first[0].deps.clock = at
    await waiting_run(first, sandbox, 15)
    number = board(sandbox)["number"]
    await send(first, sandbox, "issues", issue_payload(30, ["api"]))  # within the minute: put off
    assert "on #30" not in board(sandbox)["body"]
    assert await first[0].store.due_dashboards() == [(REPO, INSTALLATION)]
    await first[0].close()  # stopped before the pass made it

    second = await start()  # the same database, re-opened by a new process
    second[0].deps.clock = at
    at.later()
    await second[0]._dashboards()  # the runtime's 15 s pass
    assert "on #30" in board(sandbox)["body"] and board(sandbox)["number"] == number
    assert await second[0].store.due_dashboards() == []  # made, so no longer due
    await second[0]._dashboards()
    edits = [w for w in sandbox.writes if w.kind == "issue_edit" and w.number == number]
    assert len(edits) == 1  # nothing made twice


async def test_a_tick_landing_while_an_edit_forgets_the_last_one_is_still_unticked(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any],  # noqa: F811
        monkeypatch: Any) -> None:
    """Two edits of one box, handled by two workers: the bot's edit unticks the first tick and then forgets its done
    record, while the second tick (made on the page the edit just wrote) has been acted on already. The second
    tick's record is not erased with the first's: the next edit unticks the box, once."""
    rt, _ = bot
    dash = waiting_board
    approve = box_of(dash["body"], "approve", 15)
    box = D.Box.parse(approve)
    assert box is not None
    real = rt.store.forget_posted
    landed: list[int] = []

    async def forget(mark: str, github_id: int | None = None) -> bool:
        if "box-done" in mark and not landed:  # the edit is made; before it forgets, the second tick is acted on
            issue = sandbox.repo(REPO).issues[dash["number"]]
            issue["body"] = ticked(issue["body"], approve)
            second = dashboard_board.tick_id("second-edit", box)
            landed.append(second)
            await dashboard._latest_tick(rt.deps, REPO, box, second)
            await dashboard._acted(rt.deps, REPO, box, second)
        return await real(mark, github_id)
    monkeypatch.setattr(rt.store, "forget_posted", forget)

    clock.later()
    await tick(bot, sandbox, dash["number"], approve, "reader")  # refused: undone by the edit that follows
    assert landed and D.boxes(board(sandbox)["body"])[approve] is True  # the second tick, shown
    assert (await rt.store.find_posted(dashboard_board.done_mark(REPO, box))).github_id == landed[0]
    clock.later()
    assert await dashboard.refresh(await rt.deps.github.installation(INSTALLATION), rt.deps, REPO,
                                   INSTALLATION)
    assert D.boxes(board(sandbox)["body"])[approve] is False  # unticked
    assert await rt.store.find_posted(dashboard_board.done_mark(REPO, box)) is None
    assert await rt.store.find_posted(dashboard_board.tick_mark(REPO, box)) is None


async def test_an_earlier_ticks_record_does_not_untick_a_later_tick_not_yet_acted_on(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:  # noqa: F811
    """A person unticked a box before the bot acted on their tick, then ticked it again: the first tick's done
    record is left over, and the second tick's job has not run yet. The edit keeps the box ticked."""
    rt, _ = bot
    dash = waiting_board
    approve = box_of(dash["body"], "approve", 15)
    box = D.Box.parse(approve)
    assert box is not None
    first, second = dashboard_board.tick_id("first", box), dashboard_board.tick_id("second", box)
    await dashboard._latest_tick(rt.deps, REPO, box, first)
    await dashboard._acted(rt.deps, REPO, box, first)  # acted on; the box was unticked by hand meanwhile
    await dashboard._latest_tick(rt.deps, REPO, box, second)  # ticked again: queued, not acted on yet
    sandbox.repo(REPO).issues[dash["number"]]["body"] = ticked(dash["body"], approve)
    clock.later()
    await send(bot, sandbox, "issues", issue_payload(30, ["api"]))  # any job: a refresh
    assert "on #30" in board(sandbox)["body"] and D.boxes(board(sandbox)["body"])[approve] is True
    await dashboard._acted(rt.deps, REPO, box, second)  # its job acts
    clock.later()
    await pipeline.refresh_due(rt.deps)
    await send(bot, sandbox, "issues", issue_payload(31, ["api"]))
    assert D.boxes(board(sandbox)["body"])[approve] is False


async def test_a_maintainers_tick_on_postgresql(settings: Settings, sandbox: Any, team: Team, fake: Any,  # noqa: F811
                                                aiohttp_client: Any) -> None:
    from bot.run.runtime import Runtime
    from tests.conftest import load_fixture
    from tests.test_postgres_store import fresh_schema  # skips, saying why, when no PostgreSQL server answers
    from tests.test_postgres_worker import workers

    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    async with fresh_schema() as url:
        rt = await Runtime(settings.with_overrides(database_url=url, anthropic_api_key="sk-ant-test-key",
                                                   anthropic_base_url=fake.url),
                           github_max_wait=5.0, github_backoff=0.01,
                           agent_options={"retry_base": 0.01, "max_retry_wait": 1.0}).start()
        try:
            at = Clock()
            rt.deps.clock = at
            pg = (rt, await aiohttp_client(rt.web_app()))
            opted_in(sandbox, maintainer="write")
            async with workers(rt.store, rt.handle):  # type: ignore[arg-type]
                await waiting_run(pg, sandbox, 15)
                dash = board(sandbox)
                approve = box_of(dash["body"], "approve", 15)
                at.later()
                await deliver(pg, sandbox, edited(sandbox, dash["number"], ticked(dash["body"], approve), "maintainer"))
                await rt.jobs.drained(30)
            assert posts(sandbox, 15)[-1] == "done"  # approved through /approve's own path, on a worker
            assert await rt.store.active_run(f"{REPO}#15") is None
            body = board(sandbox)["body"]
            assert "#### Waiting for approval (0)" in body and approve not in body
            assert await rt.store.due_dashboards() == []
        finally:
            await rt.close()


async def test_an_edits_job_run_again_does_not_make_its_tick_the_latest_again(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:  # noqa: F811
    """An edit's job that queued its tick and then failed is run again after the box was ticked once more: the box's
    latest tick stays the later one (else that tick's done record would never match, and the box stay ticked)."""
    from bot.core import events

    rt, _ = bot
    dash = waiting_board
    approve = box_of(dash["body"], "approve", 15)
    box = D.Box.parse(approve)
    assert box is not None
    sandbox.set_permission(REPO, "maintainer", "write")
    edit = events.parse("issues", edited(sandbox, dash["number"], ticked(dash["body"], approve), "maintainer"),
                        "edit-1")
    assert isinstance(edit, events.DashboardEdit)
    await dashboard._queue(edit, box, rt.deps, None, None)
    assert (await rt.store.find_posted(dashboard_board.tick_mark(REPO, box))).github_id == dashboard_board.tick_id("edit-1", box)
    later = dashboard_board.tick_id("edit-2", box)
    await dashboard._latest_tick(rt.deps, REPO, box, later)
    await dashboard._queue(edit, box, rt.deps, None, None)  # the first edit's job, run again
    assert (await rt.store.find_posted(dashboard_board.tick_mark(REPO, box))).github_id == later
