"""Silence is a bug: every delivery the bot acts on ends in something a person on the thread can see.

A delivery that waits (every job slot busy, or a retry's backoff) gets a note within ``ack_after``
seconds, from an acknowledger that does not need a job slot; a job that fails for good says why and how
to run it again; ``/retry``, GitHub's "Redeliver" and ``python -m bot jobs retry`` run a failed job again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.run.periodic import every
from bot.run.runtime import Runtime
from bot.sandbox.anthropic import FakeAnthropic
from bot.settings import Settings
from tests.conftest import ROOT, load_fixture, post_webhook
from tests.test_faults import AGENT_OPTIONS, HookTeam, comment_on, team  # noqa: F401
from tests.test_workflows_e2e import REPO, fake, issue_payload, posts  # noqa: F401

ACK_AFTER = 0.3
NOTE = "⏳ triage-lead received"


@pytest.fixture
async def bot(settings: Settings, fake: FakeAnthropic, team: HookTeam, sandbox: Any,
              aiohttp_client: Any) -> AsyncIterator[Any]:
    """The e2e bot with one job slot and a short acknowledgement delay (production: 8 slots, 20 s)."""
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url, job_concurrency=1,
                                ack_after=ACK_AFTER)
    rt = await Runtime(s, github_max_wait=5.0, github_backoff=0.01, agent_options=AGENT_OPTIONS).start()
    yield rt, await aiohttp_client(rt.web_app())
    await rt.close()


async def until(check: Any, timeout: float, what: str) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not check():
        if loop.time() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
    return loop.time() - start


@contextlib.asynccontextmanager
async def acknowledger_paused(rt: Runtime) -> AsyncIterator[None]:
    """No sweep of the acknowledger while the block sets a scene up; it sweeps again, as before, after it.

    A running job whose thread shows nothing yet gets a note ACK_AFTER after it arrived: on a busy machine a
    job can still be starting then, so a scene that needs a job at a certain point is set up before the
    acknowledger looks."""
    [ack] = [t for t in rt._tasks if t.get_name() == "acknowledger"]
    ack.cancel()
    await asyncio.gather(ack, return_exceptions=True)
    try:
        yield
    finally:
        rt._tasks[rt._tasks.index(ack)] = asyncio.create_task(rt.notices.run_forever(), name="acknowledger")


async def busy_slot(bot: Any, sandbox: Any, team: HookTeam, number: int) -> asyncio.Event:
    """The only job slot kept busy on #number: its run waits at IMPLEMENTATION, its status comment up (the
    acknowledger paused until then, so #number itself gets no note). Set the event to let the run go on."""
    release = asyncio.Event()
    team.hooks["IMPLEMENTATION"] = release.wait
    async with acknowledger_paused(bot[0]):
        await send(bot, sandbox, "issues", issue_payload(number, ["devops"]))
        await until(lambda: "step:triage:1" in posts(sandbox, number), 10, f"#{number} at work")
    return release


def notes(sandbox: Any, number: int) -> list[str]:
    return [c["body"] for c in sandbox.comments(REPO, number) if "triage-lead received" in c["body"]
            or "could not finish" in c["body"]]


async def send(bot: Any, sandbox: Any, event: str, payload: dict[str, Any], **kw: Any) -> Any:
    sandbox.seed_from_payload(payload)
    resp = await post_webhook(bot[1], event, payload, **kw)
    assert resp.status in (200, 202), await resp.text()
    return resp


async def test_a_delivery_waiting_for_a_slot_gets_a_note_then_the_note_goes(bot: Any, sandbox: Any,
                                                                           team: HookTeam) -> None:
    rt, _ = bot
    release = await busy_slot(bot, sandbox, team, 70)
    await send(bot, sandbox, "issues", issue_payload(71, ["devops"]))
    waited = await until(lambda: notes(sandbox, 71), 10, "a note on #71")
    assert waited < 5 and "queued behind other work" in notes(sandbox, 71)[0]
    assert notes(sandbox, 70) == []  # #70's status comment already shows who is at work
    release.set()
    await rt.jobs.drained(30)
    assert notes(sandbox, 71) == [] and "status" in posts(sandbox, 71)  # the note made way for the run
    assert await rt.store.job_states() == {"done": 2}


async def test_a_delivery_in_a_retry_backoff_gets_a_note_saying_why(bot: Any, sandbox: Any, team: HookTeam) -> None:
    rt, _ = bot
    rt.jobs.retry_base = 60.0  # the next try is a minute away: only the acknowledger can speak meanwhile
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 502, times=-1)
    await send(bot, sandbox, "issues", issue_payload(72, ["devops"]))
    # (On a busy machine the first note may come while the first try still runs: it is then edited.)
    await until(lambda: any("Its last try failed" in n for n in notes(sandbox, 72)), 10, "a backoff note on #72")
    [note] = notes(sandbox, 72)
    assert "502" in note and "tries again in about" in note


async def test_a_refusal_fails_at_once_tells_the_thread_and_retry_runs_it_again(bot: Any, sandbox: Any,
                                                                               team: HookTeam) -> None:
    rt, _ = bot
    sandbox.set_permission(REPO, "maintainer", "write")
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 403, times=-1, body={"message": "Resource not accessible by integration"})
    await send(bot, sandbox, "issues", issue_payload(73, ["devops"]))
    await rt.jobs.drained(10)
    assert await rt.store.job_states() == {"failed": 1}
    assert len([r for r in sandbox.requests if r.path == f"/repos/{REPO}/git/ref/heads/master"]) == 1  # no retries
    [note] = notes(sandbox, 73)
    assert "GitHub answered 403 to GET /repos/Codertocat/Hello-World/git/ref/heads/master" in note and "permission" in note
    assert "`/retry`" in note
    sandbox.clear_faults()
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 73, "/retry", comment_id=7301))
    await rt.jobs.drained(30)
    assert "step:triage:1" in posts(sandbox, 73) and notes(sandbox, 73) == []
    assert await rt.store.job_states() == {"done": 2}


async def test_redelivering_a_failed_delivery_runs_its_job_again(bot: Any, sandbox: Any, team: HookTeam) -> None:
    rt, _ = bot
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 403, times=1, body={"message": "Resource not accessible by integration"})
    payload = issue_payload(74, ["devops"])
    await send(bot, sandbox, "issues", payload, delivery="d7400000-0000-0000-0000-000000000001")
    await rt.jobs.drained(10)
    assert await rt.store.job_states() == {"failed": 1}
    resp = await send(bot, sandbox, "issues", payload, delivery="d7400000-0000-0000-0000-000000000001")
    assert resp.status == 202 and (await resp.json())["status"] == "requeued"
    await rt.jobs.drained(30)
    assert await rt.store.job_states() == {"done": 1} and "step:triage:1" in posts(sandbox, 74)
    again = await send(bot, sandbox, "issues", payload, delivery="d7400000-0000-0000-0000-000000000001")
    assert again.status == 200 and (await again.json())["status"] == "duplicate"  # done: never run twice


async def test_the_jobs_command_lists_and_retries_failed_jobs(bot: Any, sandbox: Any, team: HookTeam) -> None:
    rt, _ = bot
    rt.jobs._poller.cancel()  # `serve` polls every 5 s for jobs queued from outside; here every 0.1 s
    rt.jobs._poller = asyncio.create_task(every(0.1, "job poll", rt.jobs._poll_once))
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 422, times=1)
    await send(bot, sandbox, "issues", issue_payload(75, ["devops"]))
    await rt.jobs.drained(10)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TRIAGE_LEAD_", "DATABASE_"))},
           "DATABASE_URL": rt.settings.database_url}

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bot", "jobs", *args], cwd=ROOT,
                                       env=env, capture_output=True, text=True, timeout=60)

    listed = await cli()
    assert listed.returncode == 0 and "1 failed job(s)" in listed.stdout and "422" in listed.stdout, listed
    retried = await cli("retry", "--all")
    assert retried.returncode == 0 and "1 job(s) queued again" in retried.stdout, retried
    await until(lambda: "step:triage:1" in posts(sandbox, 75), 20, "the re-run job's work on #75")
    await rt.jobs.drained(30)
    assert (await cli("retry", "999")).returncode == 1
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 422, times=1)
    await send(bot, sandbox, "issues", issue_payload(82, ["devops"]))
    await rt.jobs.drained(10)
    dismissed = await cli("dismiss", "--all")
    assert dismissed.returncode == 0 and "1 job(s) dismissed" in dismissed.stdout, dismissed
    assert "0 failed job(s)" in (await cli()).stdout and await rt.store.job_states() == {"done": 1, "dismissed": 1}


@pytest.mark.parametrize("status", [403, 422])
async def test_a_refused_delivery_names_the_missing_permission_and_retry_delivers_it(
        status: int, bot: Any, sandbox: Any, team: HookTeam) -> None:
    """The App may not change `.github/workflows/` without the `workflows` permission: GitHub refuses the
    branch, the job fails at once (no hours of retries), the thread is told what to grant, and once it is
    granted `/retry` delivers the change from where the run stopped."""
    from tests.test_workflows_e2e import comment_payload

    rt, _ = bot
    sandbox.set_permission(REPO, "maintainer", "write")
    await send(bot, sandbox, "issues", issue_payload(76, ["devops"]))
    await rt.jobs.drained(30)
    sandbox.fail("POST", rf"/repos/{REPO}/git/refs", status, times=-1, body={
        "message": "refusing to allow a GitHub App to create or update workflow `.github/workflows/ci.yml` "
                   "without `workflows` permission"})
    await send(bot, sandbox, "issue_comment", comment_payload(76, "/approve", comment_id=7601))
    await rt.jobs.drained(30)
    assert await rt.store.job_states() == {"done": 1, "failed": 1}
    assert len([r for r in sandbox.requests if r.path.endswith("/git/refs")]) == 1  # refused: not retried
    [note] = notes(sandbox, 76)
    assert f"GitHub answered {status} to" in note and "/git/refs" in note and "`/retry`" in note
    assert status != 403 or "`workflows` permission" in note  # (a 422 makes the bot try the branch's update)
    sandbox.clear_faults()
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 76, "/retry", comment_id=7602))
    await rt.jobs.drained(30)
    assert len(sandbox.written("pull")) == 1 and posts(sandbox, 76)[-1] == "done" and notes(sandbox, 76) == []


async def test_a_run_that_showed_its_work_then_waits_in_a_backoff_still_gets_a_note(bot: Any, sandbox: Any,
                                                                                  team: HookTeam) -> None:
    """The status comment says who is at work, not that GitHub is failing: a job in a retry's backoff is told
    of even when it had posted before."""
    rt, _ = bot
    rt.jobs.retry_base = 60.0
    team.hooks["IMPLEMENTATION"] = lambda: sandbox.fail("PATCH", rf"/repos/{REPO}/issues/comments/\d+", 502, times=-1)
    await send(bot, sandbox, "issues", issue_payload(77, ["devops"]))
    await until(lambda: any("Its last try failed" in n for n in notes(sandbox, 77)), 15, "a backoff note on #77")
    assert "status" in posts(sandbox, 77) and len(notes(sandbox, 77)) == 1


async def test_two_processes_on_one_store_post_one_note(bot: Any, sandbox: Any, team: HookTeam,
                                                        settings: Settings) -> None:
    rt, _ = bot
    other = await Runtime(rt.settings, github_max_wait=5.0, github_backoff=0.01).start()  # a second `serve`
    try:
        release = await busy_slot(bot, sandbox, team, 78)
        await send(bot, sandbox, "issues", issue_payload(79, ["devops"]))
        await until(lambda: notes(sandbox, 79), 10, "a note on #79")
        await asyncio.sleep(4 * ACK_AFTER)  # several passes of both acknowledgers
        assert len([w for w in sandbox.writes if w.kind == "comment" and w.number == 79]) == 1
        note_id = sandbox.comments(REPO, 79)[0]["id"]
        edits = [r for r in sandbox.requests if r.method == "PATCH" and r.path.endswith(f"/comments/{note_id}")]
        assert edits == []  # claimed once, in the store: neither process touches it again
        release.set()
        await rt.jobs.drained(30)
    finally:
        await other.close()


async def test_a_bots_command_waiting_gets_no_note(bot: Any, sandbox: Any, team: HookTeam) -> None:
    """Another App's comment is not acted on, so nobody waits for it: no note either."""
    rt, _ = bot
    release = await busy_slot(bot, sandbox, team, 80)
    sandbox.seed_from_payload(issue_payload(81, ["devops"]))
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 81, "/status", login="other-app[bot]",
                                                         user_type="Bot", comment_id=8101))
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 81, "/status", login="octocat", comment_id=8102))
    await until(lambda: notes(sandbox, 81), 10, "a note on #81 for octocat's command")
    assert len(notes(sandbox, 81)) == 1 and "8102" in notes(sandbox, 81)[0]
    release.set()
    await rt.jobs.drained(30)


async def test_retry_leaves_an_earlier_failure_alone_and_retries_the_run(bot: Any, sandbox: Any,
                                                                        team: HookTeam) -> None:
    """A failure from before the thread's current run is not this run's work: `/retry` does not re-run it."""
    rt, _ = bot
    sandbox.set_permission(REPO, "maintainer", "write")
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 403, times=1, body={"message": "Resource not accessible by integration"})
    await send(bot, sandbox, "issues", issue_payload(83, ["devops"]))
    await rt.jobs.drained(10)
    [old] = await rt.store.failed_jobs()
    reopened = issue_payload(83, ["devops"]) | {"action": "reopened"}
    await send(bot, sandbox, "issues", reopened)  # a run starts and waits for approval
    await rt.jobs.drained(30)
    await send(bot, sandbox, "issue_comment", comment_on(sandbox, 83, "/retry", comment_id=8301))
    await rt.jobs.drained(30)
    assert [i.job.id for i in await rt.store.failed_jobs()] == [old.job.id]  # left as it was
    assert posts(sandbox, 83).count("status") == 1
