"""A run whose stored state cannot be read (a row written by a newer deploy then rolled back, a value of the wrong
type): its thread is told so in plain words, the operators' ERROR line names the run and the field, `/retry` is
not offered as the fix, and `/cancel` from a maintainer ends the run without reading it, so the thread is free
for a new run. Nothing on such a thread is skipped in silence.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import pytest

from bot.sandbox.team import Team
from tests.conftest import post_webhook
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, issue_payload, pr_payload, send, team  # noqa: F401


async def deliver(bot: Any, sandbox: Any, event: str, payload: dict[str, Any]) -> dict[str, int]:
    """Post one delivery and wait for it; the job states after (a failed job is what some of these expect)."""
    rt, client = bot
    sandbox.seed_from_payload(payload)
    assert (await post_webhook(client, event, payload)).status == 202
    await rt.jobs.drained(30)
    return dict(await rt.store.job_states())


def said(sandbox: Any, number: int) -> list[str]:
    """What the bot said on the thread, in order (the people's comments the deliveries seed are left out)."""
    return [c["body"] for c in sandbox.comments(REPO, number) if c["user"]["type"] == "Bot"]


def new_comments(sandbox: Any, number: int, since: int) -> list[str]:
    return said(sandbox, number)[since:]


async def break_run(bot: Any, number: int, change: Callable[[dict[str, Any]], None]) -> str:
    """Make the thread's active run unreadable the way ``change`` says; its id."""
    rt, _ = bot
    record = await rt.store.active_run(f"{REPO}#{number}")
    assert record is not None
    data = copy.deepcopy(record.data)
    change(data)
    await rt.store.save_run(dataclasses.replace(record, data=data))
    return str(record.id)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def newer_format(data: dict[str, Any]) -> None:
    data["version"] = 3


def number_as_text(data: dict[str, Any]) -> None:
    data["ctx"]["number"] = "70"


@pytest.mark.parametrize(("change", "field"), [(newer_format, "format version 3"), (number_as_text, "ctx.number")])
async def test_the_thread_is_told_and_cancel_frees_it(bot: Any, sandbox: Any, team: Team, caplog: Any,
                                                       change: Callable[[dict[str, Any]], None], field: str) -> None:
    rt, _ = bot
    sandbox.set_permission(REPO, "maintainer", "write")
    await send(bot, sandbox, "issues", issue_payload(70, ["api"]))
    run_id = await break_run(bot, 70, change)

    seen = len(said(sandbox, 70))
    assert (await deliver(bot, sandbox, "issue_comment", comment_payload(70, "/approve", comment_id=1)))["failed"] == 1
    [note] = new_comments(sandbox, 70, seen)
    assert f"the stored state of run {run_id} cannot be read" in note and field in note
    assert "`/retry` would read the same stored state and fail the same way" in note
    assert "comment `/cancel` to end that run" in note
    assert "Comment the command again" not in note and "can comment `/retry`" not in note  # running it again cannot help
    # The operators' line names the run and what is wrong with it.
    assert any(run_id in line and field in line and "StoredRunError" in line for line in errors(caplog))

    # A new event on the thread is not skipped in silence while the broken run holds it.
    seen = len(said(sandbox, 70))
    reopened = issue_payload(70, ["api"]) | {"action": "reopened"}
    assert (await deliver(bot, sandbox, "issues", reopened))["failed"] == 2
    [note] = new_comments(sandbox, 70, seen)
    assert f"run {run_id} cannot be read" in note and "/cancel" in note
    assert "can comment `/retry` on this thread to run it again" not in note

    seen = len(said(sandbox, 70))
    assert (await deliver(bot, sandbox, "issue_comment", comment_payload(70, "/cancel", comment_id=2)))["failed"] == 2
    [reply] = new_comments(sandbox, 70, seen)
    assert f"`{run_id}` is cancelled" in reply and "The next event on this thread starts a new run" in reply
    cancelled = await rt.store.load_run(run_id)
    assert cancelled is not None and cancelled.state == "cancelled"
    assert await rt.store.active_run(f"{REPO}#70") is None

    # The thread is free: the next event starts a new run, as on any thread.
    seen = len(said(sandbox, 70))
    assert (await deliver(bot, sandbox, "issues", reopened))["failed"] == 2
    fresh = await rt.store.active_run(f"{REPO}#70")
    assert fresh is not None and fresh.id != run_id
    assert any(f"status:{fresh.id}" in body for body in new_comments(sandbox, 70, seen))


async def test_cancel_of_an_unreadable_run_still_needs_write_access(bot: Any, sandbox: Any, team: Team) -> None:
    rt, _ = bot
    sandbox.set_permission(REPO, "maintainer", "write")
    sandbox.set_permission(REPO, "reader", "read")
    await send(bot, sandbox, "issues", issue_payload(71, ["api"]))
    run_id = await break_run(bot, 71, newer_format)
    await send(bot, sandbox, "issue_comment", comment_payload(71, "/cancel", login="reader", comment_id=3))
    assert "`/cancel` needs write, maintain or admin access" in said(sandbox, 71)[-1]
    still = await rt.store.active_run(f"{REPO}#71")
    assert still is not None and still.id == run_id
    # `/status`, open to everyone, cannot show the run: it says why instead.
    assert (await deliver(bot, sandbox, "issue_comment", comment_payload(71, "/status", login="reader",
                                                                         comment_id=4)))["failed"] == 1
    assert f"run {run_id} cannot be read" in said(sandbox, 71)[-1]


async def test_a_push_that_moves_nothing_reads_only_the_head(bot: Any, sandbox: Any, team: Team) -> None:
    """Where only the stored head is needed it is read raw: a redelivered push of the same head is a no-op on
    an unreadable run too, as it was before runs were typed."""
    sandbox.set_permission(REPO, "maintainer", "write")
    p = pr_payload(sandbox, 72, ["api"])
    await send(bot, sandbox, "pull_request", p)
    await break_run(bot, 72, newer_format)
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    await send(bot, sandbox, "pull_request", sync)  # no failed job


async def test_a_push_after_a_finished_run_that_cannot_be_read(bot: Any, sandbox: Any, team: Team,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """The run that judged a pull request is over; its state no longer reads. A push is not a failed job telling
    people to /cancel a run that has ended, push after push: one ERROR line names the run and the field."""
    from bot.run.pull_review import judged_marker

    rt, _ = bot
    sandbox.set_permission(REPO, "maintainer", "write")
    p = pr_payload(sandbox, 73, ["api"])
    await send(bot, sandbox, "pull_request", p)
    await send(bot, sandbox, "issue_comment", comment_payload(73, "/cancel", pull=True, comment_id=731))
    known = await rt.store.find_posted(judged_marker(REPO, 73))
    assert known is not None and known.url
    record = await rt.store.load_run(known.url)
    assert record is not None and record.state == "cancelled"
    await rt.store.save_run(dataclasses.replace(record, data={**record.data, "version": 3}))
    seen = len(said(sandbox, 73))
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = sandbox.set_file(REPO, "docs/more.md", "more\n",
                                                           ref=p["pull_request"]["head"]["ref"])
    assert (await deliver(bot, sandbox, "pull_request", sync)).get("failed", 0) == 0
    assert new_comments(sandbox, 73, seen) == []
    assert any(record.id in line and "format version 3" in line and "not judged" in line for line in errors(caplog))
