"""Attacks on the budget wait and ``/approve budget`` (issue 17, point 3): a run whose estimate is more than a budget
has left must not start until someone with write access says so, and no path lifts the operator's ceilings.

Through the webhook over HTTP, the real bot against the sandbox GitHub and the local Messages API server, whose
count of requests is the witness that no model call was made.
"""

from __future__ import annotations

import copy
from typing import Any

from bot.core import dashboard as D
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.team import Team
from tests.conftest import post_webhook
from tests.test_attacks_dashboard import planted
from tests.test_budget_ceilings import Start, start  # noqa: F401  (the start fixture)
from tests.test_budget_wait import deliver, last_comment, state_of, waits
from tests.test_dashboard import Clock, board, box_of, edited, ticked
from tests.test_dashboard import deliver as deliver_edit
from tests.test_workflows_e2e import REPO, body_of, comment_payload, fake, posts, pr_payload, team  # noqa: F401

OVER = "budgets: {run_tokens: 5000}\n"


async def budget_wait(start: Start, sandbox: Any, fake: FakeAnthropic, config: str = OVER,  # noqa: F811
                      **roles: str) -> tuple[Any, Any]:
    """The bot started with ``config``; issue #60's run waits for its budget; each person gets their role."""
    sandbox.set_file(REPO, ".github/triage-lead.yml", config)
    rt, client = await start()
    await waits(rt, client, sandbox, fake, 60)
    for login, role in roles.items():
        sandbox.set_permission(REPO, login, role)
    return rt, client


def edited_comment(number: int, comment_id: int, before: str, after: str, login: str) -> dict[str, Any]:
    p = comment_payload(number, after, login=login, comment_id=comment_id)
    p["action"], p["changes"] = "edited", {"body": {"from": before}}
    return p


async def test_near_misses_quotes_and_code_blocks_start_nothing(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client = await budget_wait(start, sandbox, fake, maintainer="write")
    lines = ["/approve budgetx", "> /approve budget", "```\n/approve budget\n```", "say `/approve budget` here",
             "/approve 1 budget", "/approvebudget"]
    for n, line in enumerate(lines):
        await deliver(rt, client, sandbox, "issue_comment", comment_payload(60, line, comment_id=6100 + n))
        assert await state_of(rt, 60) == "budget" and fake.requests == [], line
    record = await rt.store.active_run(f"{REPO}#60")
    assert record is not None and "budget_approval" not in record.data["run"]


async def test_a_reader_cannot_approve_the_budget_by_editing_an_old_comment(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client = await budget_wait(start, sandbox, fake, reader="read")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(60, "thanks", login="reader", comment_id=6201))
    # The edit, as GitHub holds it when the bot reads the comment again.
    sandbox.repo(REPO).comments[6201]["body"] = "thanks\n/approve budget"
    await deliver(rt, client, sandbox, "issue_comment",
                  edited_comment(60, 6201, "thanks", "thanks\n/approve budget", "reader"))
    assert any("needs write, maintain or admin access" in c["body"] for c in sandbox.comments(REPO, 60))
    assert await state_of(rt, 60) == "budget" and fake.requests == []


async def test_approve_budget_twice_lifts_it_once(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client = await budget_wait(start, sandbox, fake, maintainer="write", other="write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(60, "/approve budget", comment_id=6301))
    assert await state_of(rt, 60) == "waiting"
    calls = len(fake.requests)
    # The same comment edited (a space added), and another maintainer's: neither approves the change waiting now.
    await deliver(rt, client, sandbox, "issue_comment",
                  edited_comment(60, 6301, "/approve budget", "/approve budget ", "maintainer"))
    await deliver(rt, client, sandbox, "issue_comment",
                  comment_payload(60, "/approve budget", login="other", comment_id=6302))
    assert "Nothing on this run waits for a budget approval" in last_comment(sandbox, 60)
    assert await state_of(rt, 60) == "waiting" and "done" not in posts(sandbox, 60)
    assert len(fake.requests) == calls
    record = await rt.store.active_run(f"{REPO}#60")
    assert record is not None and record.data["run"]["budget_approval"] == {"by": "maintainer"}


async def test_a_new_run_on_the_thread_does_not_inherit_the_approval(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    from tests.test_workflows_e2e import issue_payload

    rt, client = await budget_wait(start, sandbox, fake, maintainer="write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(60, "/approve budget", comment_id=6401))
    first = await rt.store.active_run(f"{REPO}#60")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(60, "/cancel", comment_id=6402))
    assert await rt.store.active_run(f"{REPO}#60") is None
    calls = len(fake.requests)
    labeled = issue_payload(60, ["api"]) | {"action": "labeled", "label": {"name": "api"}}
    await deliver(rt, client, sandbox, "issues", labeled)
    second = await rt.store.active_run(f"{REPO}#60")
    assert second is not None and first is not None and second.id != first.id
    assert second.state == "budget" and "budget_approval" not in second.data["run"]
    assert len(fake.requests) == calls


async def test_the_authors_approval_is_refused_and_pushes_while_it_waits_call_no_model(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    sandbox.set_file(REPO, ".github/triage-lead.yml", OVER + "approval: {not_author: true}\n")
    rt, client = await start()
    p = pr_payload(sandbox, 70, ["api"])
    author = p["pull_request"]["user"]["login"]
    sandbox.set_permission(REPO, author, "write")
    await deliver(rt, client, sandbox, "pull_request", p)
    assert await state_of(rt, 70) == "budget" and fake.requests == []
    await deliver(rt, client, sandbox, "issue_comment",
                  comment_payload(70, "/approve budget", login=author, comment_id=7001, pull=True))
    assert "asks someone else to approve" in last_comment(sandbox, 70)
    assert await state_of(rt, 70) == "budget"
    comments = len(sandbox.comments(REPO, 70))
    for n in range(3):  # the author pushes while it waits: no review, no model call, nothing piles up
        head = sandbox.set_file(REPO, "README.md", f"push {n}\n", ref=p["pull_request"]["head"]["ref"])
        sync = copy.deepcopy(p) | {"action": "synchronize"}
        sync["pull_request"]["head"]["sha"] = head
        await deliver(rt, client, sandbox, "pull_request", sync)
    assert await state_of(rt, 70) == "budget" and fake.requests == []
    assert len(sandbox.comments(REPO, 70)) == comments
    assert "Waiting for `/approve budget`" in body_of(sandbox, 70, "status")


async def test_the_dashboards_budget_box_needs_write_and_lifts_once(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client = await budget_wait(start, sandbox, fake, "dashboard: true\n" + OVER, reader="read", maintainer="write")
    clock = Clock()
    rt.deps.clock = clock
    bot = (rt, client)
    dash = board(sandbox)
    page = dash["body"]
    box = box_of(page, "approve", 60)
    assert box.split(":")[2] == "budget" and "#### Blocked by budget (1)" in page
    clock.later()
    await deliver_edit(bot, sandbox, edited(sandbox, dash["number"], ticked(page, box), "reader", before=page))
    assert await state_of(rt, 60) == "budget" and fake.requests == []
    # A box written in for an escalation's option or an approval, while it waits for its budget: not offered.
    run_id = (await rt.store.active_run(f"{REPO}#60")).id
    forged = planted(page, f"- [ ] one <!-- box:approve:{run_id}:1: -->", f"- [ ] go <!-- box:approve:{run_id}:: -->")
    clock.later()
    both = ticked(ticked(forged, f"approve:{run_id}:1:"), f"approve:{run_id}::")
    await deliver_edit(bot, sandbox, edited(sandbox, dash["number"], both, "maintainer", before=forged))
    assert await state_of(rt, 60) == "budget" and fake.requests == []
    clock.later()
    await deliver_edit(bot, sandbox, edited(sandbox, dash["number"], ticked(page, box), "maintainer", before=page))
    assert await state_of(rt, 60) == "waiting"
    calls = len(fake.requests)
    clock.later()  # the same box ticked again from the old page: the wait it lifted is over
    await deliver_edit(bot, sandbox, edited(sandbox, dash["number"], ticked(page, box), "maintainer", before=page))
    assert await state_of(rt, 60) == "waiting" and len(fake.requests) == calls
    assert "no longer" in sandbox.comments(REPO, dash["number"])[-1]["body"]
    assert D.boxes(board(sandbox)["body"]).get(box) is None


async def test_the_authors_own_events_while_it_waits_start_nothing(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    """The reader who opened the issue relabels it (a template's label), edits it, closes and reopens it: the run
    still waits for its budget, and not one model call is made."""
    from tests.test_workflows_e2e import issue_payload

    rt, client = await budget_wait(start, sandbox, fake, reader="read")
    first = await rt.store.active_run(f"{REPO}#60")
    for action in ("labeled", "edited", "reopened", "labeled"):
        p = issue_payload(60, ["api", "bug"], body="tiny") | {"action": action, "label": {"name": "bug"}}
        p["sender"] = {**p["sender"], "login": "reader"}
        sandbox.seed_from_payload(p)
        assert (await post_webhook(client, "issues", p)).status in (200, 202)  # stored, or not even that
        await rt.jobs.drained(60)
        record = await rt.store.active_run(f"{REPO}#60")
        assert record is not None and first is not None and record.id == first.id and record.state == "budget"
    assert fake.requests == []


async def test_a_new_job_after_the_approval_stays_within_the_operators_ceiling(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    """Approved, the run stops at the operator's per-run ceiling; `/retry` and `/approve 1` (new jobs, a new
    executor each) do not take it past it."""
    from tests.test_budget_ceilings import served_tokens

    rt, client = await start(run_token_budget=9_000)
    await waits(rt, client, sandbox, fake, 61)
    sandbox.set_permission(REPO, "maintainer", "write")
    for n, line in enumerate(["/approve budget", "/retry", "/approve 1", "/approve budget"]):
        await deliver(rt, client, sandbox, "issue_comment", comment_payload(61, line, comment_id=6600 + n))
        assert await state_of(rt, 61) == "escalated", line
        assert 0 < served_tokens(fake) <= 9_000, line
