"""No comment costs more than one write (issue 13, point 1), through the webhook over HTTP.

What an outsider tried: one comment of 150 `/help` and 50 `/statu` lines got 160 replies. Now a comment acts on
its first command only and names the rest in its one reply; replies (and the 👀 reaction) are limited to 5 a
minute per person per thread and 30 an hour per repository, counted in the store so every worker shares them,
with one "over the limit" note per person per thread a minute; a command that acts still acts. The reply
limits read the pipeline's clock (``Deps.clock``), which these tests hold and move instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.run.runtime import Runtime
from bot.settings import Settings
from tests.conftest import load_fixture, post_webhook
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, issue_payload, posts, team  # noqa: F401

LIMIT_NOTE = "over the reply limit"


class Clock:
    """The reply limits' clock: stands still until moved; counts its readings (who answered commands)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now, self.reads = now, 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def hold_clock(rt: Runtime) -> Clock:
    clock = Clock()
    rt.deps.clock = clock
    return clock


def bot_comments(sandbox: Any, numbers: int | range, since: int = 0) -> list[str]:
    """Bodies of the comments the bot created on these threads (edits not counted), after write ``since``."""
    wanted = range(numbers, numbers + 1) if isinstance(numbers, int) else numbers
    return [w.data["body"] for w in sandbox.writes[since:] if w.kind == "comment" and w.number in wanted]


def reactions(sandbox: Any, since: int = 0) -> list[int]:
    return [w.data["subject_id"] for w in sandbox.writes[since:] if w.kind == "reaction"]


async def comment(client: Any, sandbox: Any, number: int, body: str, *, login: str, comment_id: int) -> None:
    payload = comment_payload(number, body, login=login, comment_id=comment_id)
    if sandbox.repo(REPO).issues.get(number):  # keep the thread's labels as they are (GitHub's payload would)
        payload["issue"]["labels"] = sandbox.issue(REPO, number)["labels"]
    sandbox.seed_from_payload(payload)
    resp = await post_webhook(client, "issue_comment", payload)
    assert resp.status == 202, await resp.text()


async def drained(*runtimes: Runtime) -> None:
    """Every job done. Workers on one database take each other's jobs: wait until all of them are idle at once."""
    for _ in range(100):
        for rt in runtimes:
            await rt.jobs.drained(60)
        states = await runtimes[0].store.job_states()
        if set(states) <= {"done"}:
            return
        assert "failed" not in states, states
        await asyncio.sleep(0.05)
    raise AssertionError(f"jobs still waiting: {states}")


async def run_waiting(bot: Any, sandbox: Any, number: int) -> None:
    """A devops workflow on ``number``, run up to its approval request."""
    rt, client = bot
    payload = issue_payload(number, ["devops"], title=f"Deploy fails #{number}")
    sandbox.seed_from_payload(payload)
    assert (await post_webhook(client, "issues", payload)).status == 202
    await drained(rt)
    assert posts(sandbox, number)[-1] == "approval" and (await rt.store.active_run(f"{REPO}#{number}")).state == "waiting"


# ---- (a) one comment, one reply ----------------------------------------------------------------------------

@pytest.mark.parametrize("first", ["help", "statu"])
async def test_a_comment_of_200_command_lines_gets_one_reply_naming_the_ignored(first: str, bot: Any,
                                                                               sandbox: Any) -> None:
    rt, client = bot
    hold_clock(rt)
    sandbox.set_permission(REPO, "reed", "read")
    lines = ["/help"] * 150 + ["/statu"] * 50
    body = "\n".join(lines if first == "help" else lines[::-1])
    writes = len(sandbox.writes)
    await comment(client, sandbox, 40, body, login="reed", comment_id=4000)
    await drained(rt)
    assert [w.kind for w in sandbox.writes[writes:]] == ["comment"]  # one write: no reaction, no second reply
    [reply] = bot_comments(sandbox, 40, writes)
    if first == "help":
        assert "| `/approve` |" in reply and "did you mean" not in reply
        assert "its first: `/help`. Ignored: `/help` (149 times), `/statu` (50 times)." in reply
    else:  # the unknown command is the one command: one "did you mean", not fifty
        assert reply.count("did you mean `/status`?") == 1 and "| `/approve` |" not in reply
        assert "its first: `/statu`. Ignored: `/statu` (49 times), `/help` (150 times)." in reply


async def test_the_ignored_are_named_five_at_most(bot: Any, sandbox: Any) -> None:
    rt, client = bot
    hold_clock(rt)
    body = "\n".join(["/status"] + [f"/escalate reason {chr(97 + i)}" for i in range(9)] + ["/escalate reason a"])
    await comment(client, sandbox, 41, body, login="reed", comment_id=4100)
    await drained(rt)
    [reply] = bot_comments(sandbox, 41)
    assert reply.startswith("No triage-lead workflow is running on this thread.")
    assert ("Ignored: `/escalate reason a` (2 times), `/escalate reason b`, `/escalate reason c`, "
            "`/escalate reason d`, `/escalate reason e` and 4 more.") in reply


async def test_a_writers_comment_acts_on_its_first_command_only_with_one_reaction(bot: Any, sandbox: Any,
                                                                                 team: Any) -> None:
    rt, client = bot
    hold_clock(rt)
    sandbox.set_permission(REPO, "wren", "write")
    await run_waiting(bot, sandbox, 42)
    writes = len(sandbox.writes)
    await comment(client, sandbox, 42, "/escalate first things first\n/cancel\n" + "/approve\n" * 20,
                  login="wren", comment_id=4200)
    await drained(rt)
    assert (await rt.store.active_run(f"{REPO}#42")).state == "escalated"  # not cancelled, not approved
    assert reactions(sandbox, writes) == [4200]
    [note] = [b for b in bot_comments(sandbox, 42, writes) if "Ignored:" in b]
    assert "its first: `/escalate first things first`. Ignored: `/cancel`, `/approve` (20 times)." in note


# ---- (b) floods of comments --------------------------------------------------------------------------------

async def test_forty_comments_from_one_person_on_one_thread_get_five_replies_and_one_note(bot: Any,
                                                                                         sandbox: Any) -> None:
    rt, client = bot
    clock = hold_clock(rt)
    sandbox.set_permission(REPO, "mallory", "read")
    for i in range(40):
        await comment(client, sandbox, 43, "/help" if i % 2 else "/approve", login="mallory", comment_id=4300 + i)
    await drained(rt)
    made = bot_comments(sandbox, 43)
    assert len(made) == 6 and [LIMIT_NOTE in b for b in made] == [False] * 5 + [True]
    assert "try again in 1 minute" in made[-1]
    assert reactions(sandbox) == []
    clock.now += 61  # a minute later: one more reply fits, and one more note once that is spent
    for i in range(7):
        await comment(client, sandbox, 43, "/help", login="mallory", comment_id=4400 + i)
    await drained(rt)
    assert len(bot_comments(sandbox, 43)) == 6 + 5 + 1
    # Someone else on the same thread has a limit of their own.
    await comment(client, sandbox, 43, "/help", login="reed", comment_id=4500)
    await drained(rt)
    assert "| `/approve` |" in bot_comments(sandbox, 43)[-1]


async def test_forty_comments_across_ten_threads_get_thirty_replies_an_hour(bot: Any, sandbox: Any) -> None:
    rt, client = bot
    clock = hold_clock(rt)
    threads = range(60, 70)
    for i in range(40):  # eight people over ten threads: no one repeats on a thread, so only the hour binds
        await comment(client, sandbox, threads[i % 10], "/help", login=f"user{i % 8}", comment_id=6000 + i)
    await drained(rt)
    made = bot_comments(sandbox, threads)
    assert len(made) == 30 and not [b for b in made if LIMIT_NOTE in b]
    clock.now += 3599  # still within the hour
    await comment(client, sandbox, 60, "/help", login="newcomer", comment_id=6100)
    await drained(rt)
    assert len(bot_comments(sandbox, threads)) == 30
    clock.now += 2  # the hour has passed
    await comment(client, sandbox, 60, "/help", login="newcomer", comment_id=6101)
    await drained(rt)
    assert len(bot_comments(sandbox, threads)) == 31


async def test_a_writers_repeated_commands_that_change_nothing_are_replies_under_the_limit(
        bot: Any, sandbox: Any, team: Any) -> None:
    """`/retry` with nothing failed changes nothing: the engine's answer is a reply like any other."""
    rt, client = bot
    hold_clock(rt)
    sandbox.set_permission(REPO, "wren", "write")
    await run_waiting(bot, sandbox, 44)
    writes = len(sandbox.writes)
    for i in range(12):
        await comment(client, sandbox, 44, "/retry", login="wren", comment_id=4600 + i)
    await drained(rt)
    made = bot_comments(sandbox, 44, writes)
    assert len(made) == 6 and made[0].startswith("No step has failed") and LIMIT_NOTE in made[-1]
    assert reactions(sandbox, writes) == []
    assert (await rt.store.active_run(f"{REPO}#44")).state == "waiting"


async def test_a_writers_commands_all_act_but_their_reactions_are_limited(bot: Any, sandbox: Any,
                                                                          team: Any) -> None:
    rt, client = bot
    hold_clock(rt)
    sandbox.set_permission(REPO, "wren", "write")
    await run_waiting(bot, sandbox, 45)
    writes = len(sandbox.writes)
    for i in range(12):  # escalate, resume, escalate, ...: each changes the run
        body = "/escalate hold on" if i % 2 == 0 else "/approve 1"
        await comment(client, sandbox, 45, body, login="wren", comment_id=4700 + i)
    await drained(rt)
    record = await rt.store.active_run(f"{REPO}#45")
    assert record.state == "waiting" and len(record.data["run"]["decisions"]) == 6  # all twelve acted
    assert reactions(sandbox, writes) == [4700 + i for i in range(5)]
    assert not [b for b in bot_comments(sandbox, 45, writes) if LIMIT_NOTE in b]


# ---- (c) a workflow beside the flood -----------------------------------------------------------------------

async def test_a_workflow_beside_a_flood_finishes_and_a_writers_approval_still_acts(bot: Any, sandbox: Any,
                                                                                    team: Any) -> None:
    rt, client = bot
    hold_clock(rt)
    sandbox.set_permission(REPO, "wren", "write")
    payload = issue_payload(50, ["devops"], title="Deploy fails")
    sandbox.seed_from_payload(payload)
    assert (await post_webhook(client, "issues", payload)).status == 202
    for i in range(40):  # at the same time: one person floods a thread, many others flood ten more
        await comment(client, sandbox, 51, "/help", login="mallory", comment_id=5100 + i)
        await comment(client, sandbox, 52 + i % 10, "/status", login=f"user{i % 8}", comment_id=5200 + i)
    await drained(rt)
    assert posts(sandbox, 50)[-1] == "approval"  # the run posted its results meanwhile
    flood = bot_comments(sandbox, range(51, 62))
    assert len(flood) == 30 and len([b for b in flood if LIMIT_NOTE in b]) <= 1  # the repository's hour is spent
    writes = len(sandbox.writes)
    await comment(client, sandbox, 50, "/approve", login="wren", comment_id=5000)
    await drained(rt)
    assert posts(sandbox, 50)[-1] == "done" and len(sandbox.written("pull")) == 1  # the approval acted...
    assert reactions(sandbox, writes) == [] and bot_comments(sandbox, range(51, 62), writes) == []  # ...quietly


# ---- (d) two workers on one database -----------------------------------------------------------------------

@contextlib.asynccontextmanager
async def two_runtimes(settings: Settings, url: str, aiohttp_client: Any) -> AsyncIterator[list[tuple[Runtime, Any]]]:
    pair = []
    try:
        for _ in range(2):
            rt = await Runtime(settings.with_overrides(database_url=url), github_max_wait=5.0,
                               github_backoff=0.01).start()
            pair.append((rt, await aiohttp_client(rt.web_app())))
        yield pair
    finally:
        for rt, _ in pair:
            await rt.close()


async def flood_two_workers(pair: list[tuple[Runtime, Any]], sandbox: Any,
                            drain: Callable[[], Awaitable[None]]) -> list[Clock]:
    """20 comments of one person on one thread, then 30 of others over ten threads, alternating between the two
    web processes. Together: 5 replies + 1 note, then what is left of the repository's 30 an hour. The first
    thread's jobs are drained before the others are sent: threads run in parallel, and the others' replies
    would otherwise take the hour's last slots before the note, in whatever order the workers get to them."""
    clocks = [hold_clock(rt) for rt, _ in pair]
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    for i in range(20):
        await comment(pair[i % 2][1], sandbox, 70, "/help", login="mallory", comment_id=7000 + i)
    await drain()
    for i in range(30):
        await comment(pair[i % 2][1], sandbox, 71 + i % 10, "/help", login=f"user{i}", comment_id=7100 + i)
    await drain()
    return clocks


def assert_shared(sandbox: Any, clocks: list[Clock]) -> None:
    own = bot_comments(sandbox, 70)
    assert len(own) == 6 and LIMIT_NOTE in own[-1]
    assert len(bot_comments(sandbox, range(70, 81))) == 30
    assert any(c.reads for c in clocks)  # (which worker answered which is the scheduler's affair)


async def test_two_workers_on_one_sqlite_file_share_the_reply_limits(settings: Settings, sandbox: Any,
                                                                     tmp_path: Path, aiohttp_client: Any) -> None:
    async with two_runtimes(settings, f"sqlite:///{tmp_path / 'shared.sqlite3'}", aiohttp_client) as pair:
        clocks = await flood_two_workers(pair, sandbox, lambda: drained(*(rt for rt, _ in pair)))
        assert_shared(sandbox, clocks)


async def test_two_workers_on_one_postgres_database_share_the_reply_limits(settings: Settings, sandbox: Any,
                                                                           aiohttp_client: Any) -> None:
    from tests.test_postgres_store import fresh_schema  # skips, saying why, when no PostgreSQL server answers
    from tests.test_postgres_worker import workers

    async with fresh_schema() as url, two_runtimes(settings, url, aiohttp_client) as pair:
        (a, _), (b, _) = pair
        async with workers(a.store, a.handle, concurrency=2), workers(b.store, b.handle, concurrency=2):  # type: ignore[arg-type]
            clocks = await flood_two_workers(pair, sandbox, lambda: drained(a, b))
        assert_shared(sandbox, clocks)
