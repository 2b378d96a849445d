"""Cost known before it is spent (issue 17, point 3): a run whose estimate is more than a budget has left waits in
the budget state before its first model call and says so; a maintainer's ``/approve budget`` lets it go on past
the repository's own limits, never past the operator's ceilings.

Through the webhook over HTTP, the real bot against the sandbox GitHub and the local Messages API server, whose
count of requests is the witness that no model call was made; and the engine's rules, pure.
"""

from __future__ import annotations

import time
from typing import Any

from bot.core import engine as E
from bot.core.catalog import load_catalog
from bot.run.runtime import Runtime
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.team import Team
from tests.conftest import INSTALLATION, post_webhook
from tests.test_budget_ceilings import Start, served_tokens, start  # noqa: F401  (the start fixture)
from tests.test_budget_ceilings import deliver as deliver_all
from tests.test_workflows_e2e import REPO, body_of, comment_payload, fake, issue_payload, posts, team  # noqa: F401


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


async def deliver(rt: Runtime, client: Any, sandbox: Any, event: str, payload: dict[str, Any]) -> None:
    await deliver_all(rt, client, sandbox, [payload], event)


async def waits(rt: Runtime, client: Any, sandbox: Any, fake: FakeAnthropic, number: int) -> str:
    """A new issue's run waits for its budget, no model called; its status comment says why."""
    await deliver(rt, client, sandbox, "issues", issue_payload(number, ["api"]))
    assert await state_of(rt, number) == "budget" and fake.requests == []
    return body_of(sandbox, number, "status")


async def state_of(rt: Runtime, number: int) -> str | None:
    record = await rt.store.active_run(f"{REPO}#{number}")
    return record.state if record is not None else None


def last_comment(sandbox: Any, number: int) -> str:
    return str(sandbox.comments(REPO, number)[-1]["body"])


async def spend(rt: Runtime, key: str, tokens: int) -> None:
    """Tokens spent today under a ledger key, as earlier runs' calls leave them."""
    assert await rt.store.reserve(f"earlier:{key}", tokens, [(key, 10**12)])
    await rt.store.settle(f"earlier:{key}", tokens)


# ---- through the webhook --------------------------------------------------------------------------------

async def test_over_the_repositorys_run_budget_it_waits_until_a_maintainer_approves(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    sandbox.set_file(REPO, ".github/triage-lead.yml", "budgets: {run_tokens: 5000}\n")
    rt, client = await start()
    status = await waits(rt, client, sandbox, fake, 60)  # not one model call
    assert "Waiting for `/approve budget`" in status
    assert "is more than this run's token budget (set by this repository's config) has left: 5,000 tokens" in status
    assert "comment `/approve budget` to let it go on" in status and "operator's ceilings still apply" in status

    # A reader may not approve; a plain /approve (or one with a number) does not start it: it says what does.
    sandbox.set_permission(REPO, "reader", "read")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(60, "/approve budget", login="reader",
                                                                        comment_id=6001))
    assert "`/approve` needs write, maintain or admin access" in last_comment(sandbox, 60)
    sandbox.set_permission(REPO, "maintainer", "write")
    for n, line in enumerate(["/approve", "/approve 1", "/retry", "/escalate now"]):
        await deliver(rt, client, sandbox, "issue_comment", comment_payload(60, line, comment_id=6002 + n))
        answer = last_comment(sandbox, 60)
        assert "This run has not started: its estimate of" in answer and "`/approve budget`" in answer, line
        assert await state_of(rt, 60) == "budget" and fake.requests == []

    # /status shows the wait to anyone.
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(60, "/status", login="someone",
                                                                        comment_id=6010))
    assert "Waiting for `/approve budget`" in last_comment(sandbox, 60)

    await deliver(rt, client, sandbox, "issue_comment", comment_payload(60, "/approve budget", comment_id=6011))
    # Past the repository's own 5,000 tokens, to the approval request: its limit does not bind an approved run.
    assert await state_of(rt, 60) == "waiting" and posts(sandbox, 60)[-1] == "approval"
    assert served_tokens(fake) > 5_000
    status = body_of(sandbox, 60, "status")
    assert "Budget approved by `maintainer`" in status and "Waiting for `/approve`" in status
    record = await rt.store.active_run(f"{REPO}#60")
    assert record is not None and record.data["run"]["budget_approval"] == {"by": "maintainer"}


async def test_the_operators_ceiling_still_stops_an_approved_run(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client = await start(run_token_budget=9_000)
    status = await waits(rt, client, sandbox, fake, 61)
    assert "this run's token budget (the operator's ceiling) has left: 9,000 tokens" in status
    assert "no approval lifts them" in status and "it stops where they are reached" in status
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(61, "/approve budget", comment_id=6101))
    answer = next(c["body"] for c in sandbox.comments(REPO, 61) if "lets this run go on" in c["body"])
    assert "not past the operator's" in answer and "(9,000 tokens)" in answer
    assert await state_of(rt, 61) == "escalated"
    assert "of its 9,000 tokens" in body_of(sandbox, 61, "escalation")
    assert 0 < served_tokens(fake) <= 9_000


async def test_approve_budget_quotes_what_is_left_when_it_is_given_not_when_the_wait_began(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    """Other runs spend while this one waits: the approval's warning quotes what the operator's ceilings leave now."""
    rt, client = await start(day_token_budget=1_000_000)
    day = f"day:{INSTALLATION}:{today()}"
    await spend(rt, day, 990_000)
    assert "has left: 10,000 tokens" in await waits(rt, client, sandbox, fake, 67)
    assert await rt.store.reserve("meanwhile", 4_000, [(day, 10**12)])  # another run's call, in flight
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(67, "/approve budget", comment_id=6701))
    answer = next(c["body"] for c in sandbox.comments(REPO, 67) if "lets this run go on" in c["body"])
    assert "(6,000 tokens)" in answer and "10,000" not in answer


async def test_within_every_budget_a_run_starts_at_once(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    sandbox.set_file(REPO, ".github/triage-lead.yml", "budgets: {run_tokens: 1000000, day_tokens: 1000000}\n")
    rt, client = await start()
    await deliver(rt, client, sandbox, "issues", issue_payload(62, ["api"]))
    assert await state_of(rt, 62) == "waiting" and posts(sandbox, 62)[-1] == "approval"
    status = body_of(sandbox, 62, "status")
    assert "**Cost:** about $" in status and "/approve budget" not in status and "Budget approved" not in status


async def test_an_installations_day_budget_nearly_spent_makes_it_wait(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client = await start(day_token_budget=1_000_000)
    await spend(rt, f"day:{INSTALLATION}:{today()}", 990_000)
    assert ("this installation's token budget for today (the operator's ceiling) has left: 10,000 tokens"
            in await waits(rt, client, sandbox, fake, 63))
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(63, "/cancel", comment_id=6301))
    assert await state_of(rt, 63) is None and fake.requests == []  # cancelled: nothing active on the thread


async def test_the_day_used_as_the_usage_table_counts_it_makes_it_wait_too(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client = await start(day_token_budget=1_000_000)
    await rt.store.add_usage(INSTALLATION, today(), 999_000, 1.0)
    assert "has left: 1,000 tokens" in await waits(rt, client, sandbox, fake, 66)


async def test_a_repositorys_day_budget_nearly_spent_makes_it_wait_and_approval_lifts_it(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    sandbox.set_file(REPO, ".github/triage-lead.yml", "budgets: {day_tokens: 200000}\n")
    rt, client = await start()
    await spend(rt, f"day:{REPO.lower()}:{today()}", 195_000)
    assert ("this repository's token budget for today (set by this repository's config) has left: 5,000 tokens"
            in await waits(rt, client, sandbox, fake, 64))
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(64, "/approve budget", comment_id=6401))
    assert await state_of(rt, 64) == "waiting" and posts(sandbox, 64)[-1] == "approval"
    assert served_tokens(fake) > 5_000  # past what the repository's own day budget had left
    assert not any("lets this run go on" in c["body"] for c in sandbox.comments(REPO, 64))  # nothing to warn of


async def test_approve_budget_on_a_run_that_does_not_wait_for_it_changes_nothing(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client = await start()
    await deliver(rt, client, sandbox, "issues", issue_payload(65, ["api"]))
    assert await state_of(rt, 65) == "waiting"
    sandbox.set_permission(REPO, "maintainer", "write")
    await deliver(rt, client, sandbox, "issue_comment", comment_payload(65, "/approve budget", comment_id=6501))
    assert "Nothing on this run waits for a budget approval" in last_comment(sandbox, 65)
    assert await state_of(rt, 65) == "waiting" and "done" not in posts(sandbox, 65)  # the change is not approved


async def test_a_run_stored_by_a_job_that_died_before_starting_it_checks_its_budget_when_resumed(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team, monkeypatch: Any) -> None:  # noqa: F811
    from bot.run import runs

    sandbox.set_file(REPO, ".github/triage-lead.yml", "budgets: {run_tokens: 5000}\n")
    rt, client = await start()
    real = runs.executor_for

    async def dies(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the process died here")
    monkeypatch.setattr(runs, "executor_for", dies)  # after the run is stored, before it starts
    payload = issue_payload(67, ["api"])
    sandbox.seed_from_payload(payload)
    assert (await post_webhook(client, "issues", payload)).status == 202
    await rt.jobs.drained(60)
    [failed] = await rt.store.failed_jobs(f"{REPO}#67")
    assert await state_of(rt, 67) == "running"  # stored as new, never started
    monkeypatch.setattr(runs, "executor_for", real)
    assert await rt.store.requeue_failed(failed.job.id)
    rt.jobs.kick(f"{REPO}#67", delivered=False)
    await rt.jobs.drained(60)
    assert await state_of(rt, 67) == "budget" and fake.requests == []


# ---- the engine's rules, pure ----------------------------------------------------------------------------

SHORT: E.BudgetShort = {"budget": "run", "by_repo": True, "estimate": 170_000, "left": 5_000,
                        "operator_left": 2_000_000}
A, B = "a" * 40, "b" * 40


def waiting_pull() -> tuple[E.Run, Any]:
    wf = load_catalog().workflows["backend-feature"]
    run, actions = E.advance(E.Run.new("r", wf, head_sha=A, on_pull=True), E.Start(short=SHORT), wf)
    assert run.state == E.BUDGET and actions == [] and run.budget == SHORT
    return run, wf


def test_a_pull_requests_review_waits_with_the_run_and_is_of_the_head_the_approval_finds() -> None:
    run, wf = waiting_pull()
    run, actions = E.advance(run, E.HeadMoved(B), wf)
    assert run.head_sha == B and actions == [] and run.state == E.BUDGET  # no review: a model call
    run, actions = E.advance(run, E.Command("approve", "maintainer", reason="budget"), wf)
    assert actions[0] == E.ReviewPull(B) and isinstance(actions[1], E.RunAgent) and run.state == E.RUNNING


def test_an_approval_says_when_the_operators_ceiling_will_stop_the_run() -> None:
    wf = load_catalog().workflows["backend-feature"]
    short: E.BudgetShort = {**SHORT, "by_repo": False, "left": 9_000, "operator_left": 9_000}
    run, _ = E.advance(E.Run.new("r", wf), E.Start(short=short), wf)
    assert E.approves_budget(run, E.Command("approve", "m", reason="Budget, please"))
    assert not E.approves_budget(run, E.Command("approve", "m", reason="2"))
    run, actions = E.advance(run, E.Command("approve", "m", reason="budget"), wf)
    [reply] = [a for a in actions if isinstance(a, E.Reply)]
    assert "not past the operator's" in reply.text and run.budget_approval == {"by": "m"}
    again, actions = E.advance(run, E.Command("approve", "m", reason="budget"), wf)
    assert again.to_dict() == run.to_dict() and "Nothing on this run waits" in actions[0].text  # type: ignore[union-attr]


def test_a_run_that_started_or_was_approved_never_waits_for_its_budget() -> None:
    wf = load_catalog().workflows["backend-feature"]
    run = E.Run.new("r", wf)
    run.budget_approval = {"by": "m"}
    run, actions = E.advance(run, E.Start(short=SHORT), wf)
    assert run.state == E.RUNNING and any(isinstance(a, E.RunAgent) for a in actions)
    stored = E.Run.from_dict(E.Run.new("r", wf).to_dict())
    assert "budget" not in stored.to_dict() and "budget_approval" not in stored.to_dict()  # old runs' shape
