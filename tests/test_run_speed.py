"""A run's own posts known in memory (issue 16, runs at scale): a run this job started finds its comments without
asking the store before each one or listing the thread before each new one, and is never wrong for it.

The real bot end to end (webhook, store, jobs, executor, gidgethub over HTTP to the sandbox, the anthropic SDK
to the local Messages API): what it posts, and the reads it made to post it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest

from bot.core.markers import marker, markers_in, with_marker
from bot.run.runtime import Runtime
from bot.run.state import RunState
from bot.sandbox.team import Team, result
from bot.store import Posted, StepRecord
from bot.store.base import Along
from tests.conftest import load_fixture, post_webhook
from tests.test_scale_saves import new_state
from tests.test_store import store  # noqa: F401  (the store fixture, on each backend)
from tests.test_workflows_e2e import bot, fake, team  # noqa: F401  (the e2e bot, its model server and team)

REPO = "Codertocat/Hello-World"
BOT = "triage-lead[bot]"


def opened(number: int) -> dict[str, Any]:
    p = load_fixture("issues.opened.json")
    p["issue"] |= {"number": number, "title": "Add an endpoint", "body": "",
                   "labels": [{"name": "api", "id": 1, "color": "ededed"}]}
    return p


async def open_issue(bot: Any, sandbox: Any, number: int, delivery: str) -> None:
    rt, client = bot
    payload = opened(number)
    sandbox.seed_from_payload(payload)
    resp = await post_webhook(client, "issues", payload, delivery=delivery)
    assert resp.status == 202, await resp.text()
    await rt.jobs.drained(30)
    assert "failed" not in await rt.store.job_states()


def keys(sandbox: Any, number: int) -> list[str]:
    return [k for c in sandbox.comments(REPO, number) for k in markers_in(c["body"])]


def requests(sandbox: Any, method: str, path: str) -> int:
    return sum(1 for r in sandbox.requests if r.method == method and r.path.split("?")[0] == path)


class Counting:
    """The store's find_posted, counted (a wrapper on the runtime's store)."""

    def __init__(self, rt: Runtime) -> None:
        self.asked: list[str] = []
        inner = rt.store.find_posted

        async def find_posted(marker: str) -> Posted | None:
            self.asked.append(marker)
            return await inner(marker)

        rt.store.find_posted = find_posted  # type: ignore[method-assign]


async def test_a_new_run_posts_each_comment_once_reading_the_thread_once_and_never_asking_the_store(
        bot: Any, sandbox: Any) -> None:
    rt, _ = bot
    counting = Counting(rt)
    await open_issue(bot, sandbox, 7, "delivery-new-run")
    posted = keys(sandbox, 7)
    assert posted and len(posted) == len(set(posted))  # every marker once: edits, never a second post
    assert "status:delivery-new-run" in posted and any(k.startswith("approval:delivery-new-run") for k in posted)
    assert requests(sandbox, "GET", f"/repos/{REPO}/issues/7/comments") == 1
    # (The notices' note on the delivery is not the run's: it is asked for as before.)
    assert not [m for m in counting.asked if "delivery-new-run" in m and "triage-lead:note:" not in m]
    # What it posted is in the store all the same, for later jobs (and the notices) to find.
    for key in posted:
        assert await rt.store.find_posted(f"<!-- triage-lead:{key} -->") is not None


async def test_a_comment_of_the_run_already_on_the_thread_is_edited_when_the_store_lost_it(
        bot: Any, sandbox: Any) -> None:
    """A store restored from a backup knows neither the run nor what it posted; GitHub redelivers the delivery. The
    bot's own comment with the run's marker is found on the thread and edited; anyone else's copy of it is not."""
    rt, _ = bot
    sandbox.seed_from_payload(opened(8))
    mine = sandbox.add_comment(REPO, 8, with_marker("status from before the restore", marker("status", "delivery-x")),
                               user=BOT, user_type="Bot")
    forged = sandbox.add_comment(REPO, 8, with_marker("a forged step", marker("step", "delivery-x", "architecture", 1)),
                                 user="mallory", user_type="User")
    await open_issue(bot, sandbox, 8, "delivery-x")
    comments = sandbox.comments(REPO, 8)
    statuses = [c for c in comments if markers_in(c["body"])[-1:] == ["status:delivery-x"]]
    assert [c["id"] for c in statuses] == [mine["id"]]  # edited in place, not posted again
    assert "status from before the restore" not in statuses[0]["body"]
    assert forged["body"] == next(c for c in comments if c["id"] == forged["id"])["body"]  # nobody else's is edited
    ours = [c for c in comments if c["user"]["login"] == BOT and "step:delivery-x:architecture:1" in c["body"]]
    assert len(ours) == 1  # the step's own comment, beside the forged one
    known = await rt.store.find_posted(marker("status", "delivery-x"))
    assert known is not None and known.github_id == mine["id"]


async def test_a_comment_deleted_mid_run_is_posted_again(bot: Any, sandbox: Any) -> None:
    """The run's memory holds an id; the comment behind it may be gone (someone deleted it): posted again."""
    rt, _ = bot
    from bot.run import writes

    deleted: list[int] = []
    real = writes.Writes._status

    async def status_then_delete(self: Any, state: RunState) -> None:
        await real(self, state)
        mark = marker("status", state.run.id)
        known = state.posts.by_mark.get(mark) if state.posts is not None else None
        if known is not None and not deleted:  # the first status comment, deleted on GitHub at once
            deleted.append(known.github_id)
            del sandbox.repo(REPO).comments[known.github_id]

    writes.Writes._status = status_then_delete  # type: ignore[method-assign]
    try:
        await open_issue(bot, sandbox, 9, "delivery-deleted")
    finally:
        writes.Writes._status = real  # type: ignore[method-assign]
    assert deleted
    statuses = [c for c in sandbox.comments(REPO, 9) if "status:delivery-deleted" in c["body"]]
    assert len(statuses) == 1 and statuses[0]["id"] != deleted[0]
    known = await rt.store.find_posted(marker("status", "delivery-deleted"))
    assert known is not None and known.github_id == statuses[0]["id"]


async def test_a_run_opened_from_the_store_asks_the_store(bot: Any, sandbox: Any) -> None:
    """After a restart (or for a later delivery) nothing is known in memory: the store's records are used."""
    rt, _ = bot
    await open_issue(bot, sandbox, 10, "delivery-stored")
    record = await rt.store.load_run("delivery-stored")
    assert record is not None
    state = RunState.open(record)
    assert state.posts is None
    counting = Counting(rt)
    from bot.run.runs import executor_for

    gh = await rt.github.installation(2311213)
    executor = await executor_for(gh, rt.deps, state)
    before = requests(sandbox, "GET", f"/repos/{REPO}/issues/10/comments")
    state.data.status_body = None  # the status comment must be edited again
    await executor._status(state)
    assert marker("status", "delivery-stored") in counting.asked
    assert requests(sandbox, "GET", f"/repos/{REPO}/issues/10/comments") == before  # the store knew it
    assert len([c for c in sandbox.comments(REPO, 10) if "status:delivery-stored" in c["body"]]) == 1


async def test_a_steps_record_and_its_days_usage_are_written_together(store: Any) -> None:  # noqa: F811
    """One transaction per finished step: its record and, when asked, what it adds to the installation's day."""
    await store.save_run(new_state("r1").record)
    step = StepRecord(run_id="r1", step_id="triage", iteration=1, status="done", output={"ok": True},
                      input_tokens=100, output_tokens=20, cache_read_tokens=300, cache_write_tokens=4, cost_usd=0.5)
    await store.save_step(step, usage_day=(7, "2026-12-03"))
    await store.save_step(dataclasses.replace(step, iteration=2), usage_day=(7, "2026-12-03"))
    await store.save_step(dataclasses.replace(step, iteration=3))  # no usage to add (no tokens, or no installation)
    assert [s.iteration for s in await store.steps_of("r1")] == [1, 2, 3]
    assert await store.usage_on(7, "2026-12-03") == 2 * 424
    assert await store.usage_on(7, "2026-12-04") == 0


async def test_a_new_runs_steps_count_in_the_days_usage(bot: Any, sandbox: Any) -> None:
    rt, _ = bot
    await open_issue(bot, sandbox, 11, "delivery-usage")
    steps = await rt.store.steps_of("delivery-usage")
    assert steps and all(s.tokens for s in steps)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert await rt.store.usage_on(2311213, day) == sum(s.tokens for s in steps)


async def test_runs_at_one_commit_read_the_repositorys_overview_once_between_them(bot: Any, sandbox: Any) -> None:
    """The overview (tree, README, CONTRIBUTING) of a commit is the process's, not each job's: what a commit holds
    never changes."""
    await open_issue(bot, sandbox, 12, "delivery-first")
    await open_issue(bot, sandbox, 13, "delivery-second")
    trees = [r for r in sandbox.requests if r.method == "GET" and "/git/trees/" in r.path]
    assert len(trees) == 1


async def test_what_a_run_posted_and_its_finished_step_are_stored_with_its_save_and_never_without_it(store: Any) -> None:  # noqa: F811
    state = new_state("r7")
    first = Posted(marker=marker("status", "r7"), repo="o/r", kind="comment", github_id=11, number=1, url="u1")
    step = Posted(marker=marker("step", "r7", "triage", 1), repo="o/r", kind="comment", github_id=12, number=1)
    done = StepRecord(run_id="r7", step_id="triage", iteration=1, status="done", output={"ok": 1}, input_tokens=9)
    # No such row: a partial save writes nothing, what goes along neither (the caller then saves the run whole).
    assert await store.save_run_fields(state.record, {"replies": "1"}, Along([first], done, (3, "2026-12-03"))) \
        is False
    assert await store.find_posted(first.marker) is None and await store.steps_of("r7") == []
    await store.save_run(state.record, Along([first]))
    assert await store.find_posted(first.marker) == first
    state.data.replies = 2
    along = Along([step], done, (3, "2026-12-03"))
    if not await store.save_run_fields(state.record, {"replies": "2"}, along):  # PostgreSQL saves runs whole
        assert await store.find_posted(step.marker) is None
        await store.save_run(dataclasses.replace(state.record, data=state.data.to_json()), along)
    assert await store.find_posted(step.marker) == step
    assert (await store.load_run("r7")).data["replies"] == 2
    assert await store.posted_since("o/r", 1, time.time() - 60)
    assert [s.output for s in await store.steps_of("r7")] == [{"ok": 1}]
    assert await store.usage_on(3, "2026-12-03") == 9


async def test_an_issue_filed_by_an_earlier_run_is_not_counted_as_this_runs(bot: Any, sandbox: Any, team: Team) -> None:
    """The run's own comments are known in memory; an issue's marker is not the run's (the same tech debt is filed
    once, by whichever run finds it first), so the store still says whether it exists before it counts."""
    rt, _ = bot
    rt.deps.settings = rt.deps.settings.with_overrides(max_issues_per_run=1)
    team.script["REVIEW"] = [result("review", tech_debt=[{"title": "Debt A", "body": "later"}]),
                             result("review", tech_debt=[{"title": "Debt A", "body": "again"},
                                                         {"title": "Debt B", "body": "new"}])]
    await open_issue(bot, sandbox, 14, "delivery-debt-1")
    await open_issue(bot, sandbox, 15, "delivery-debt-2")
    assert [w.data["title"] for w in sandbox.writes if w.kind == "issue"] == ["Debt A", "Debt B"]
    assert all("Stopped:" not in c["body"] for n in (14, 15) for c in sandbox.comments(REPO, n))


@pytest.mark.parametrize("reply", [
    b"{}", b'{"content": [{"text": "x"}], "usage": {}}', b'{"content": [], "usage": {"input_tokens": -5000}}',
    b'{"content": [], "usage": {"output_tokens": "n/a"}}', b'{"content": [], "usage": {"input_tokens": true}}',
    b"not json"], ids=["empty", "block-without-type", "negative", "text", "bool", "not-json"])
def test_a_reply_of_the_wrong_shape_is_a_failure_that_keeps_its_reservation(reply: bytes) -> None:
    """Read as JSON, not through the SDK's models: its shape is checked here. Answered means maybe billed, so the
    call's reservation stays counted (``unanswered``), never settled at 0; a negative count never credits a budget."""
    from bot.agents.calls import ApiFailure, reply_of

    with pytest.raises(ApiFailure) as no:
        reply_of(reply)
    assert no.value.unanswered == (0 if reply == b"not json" else 1)


def test_a_reply_of_the_right_shape_is_read_as_sent() -> None:
    from bot.agents.calls import ApiFailure, reply_of

    good: dict[str, Any] = {"content": [{"type": "text", "text": "hi"}],
                            "usage": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": None}}
    assert reply_of(json.dumps(good).encode()) == good
    later = good | {"usage": good["usage"] | {"server_tool_use": {"web_search_requests": 2, "web_fetch": {"a": 1}}}}
    assert reply_of(json.dumps(later).encode()) == later  # a member the bot does not read is not a failure
    bad = good | {"usage": good["usage"] | {"server_tool_use": {"web_search_requests": -1}}}
    with pytest.raises(ApiFailure):
        reply_of(json.dumps(bad).encode())  # the count it reads still must be one
