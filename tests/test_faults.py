"""Faults in the middle of a run, on the real bot over HTTP.

GitHub answering 5xx, answering slowly, or rate-limiting (primary and secondary limits); the Anthropic API
overloaded, rate-limited or timing out for longer than the runtime retries; the database refusing writes
when a webhook arrives; the process dying mid-run. Each must end in a completed run or in a readable
escalation on the thread, and nothing may be posted twice.

The GitHub client's timeout is fixed (``aiohttp.ClientTimeout(total=30)`` in ``bot/run/runtime.py``, no
parameter), so a request that outlives it would take 30 s to test: a slow gateway timeout (a 504 after a
delay, what GitHub's front end answers when its backend is too slow) stands in for it. The model call's
timeout is a parameter (``agent_options["call_timeout"]``) and is tested for real.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.core.markers import markers_in
from bot.run.runtime import Runtime
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.team import STEP
from bot.settings import Settings
from tests.conftest import load_fixture, post_webhook
from tests.test_workflows_e2e import REPO, Team, bot, comment_payload, fake, issue_payload, posts  # noqa: F401

DEVOPS = ["status", "step:triage:1", "step:implementation:1", "verdict:review:1",
          "approval"]  # a skipped step is a row of the status comment, not a comment  # a benign devops-pipeline run on an issue, up to the request for approval
AGENT_OPTIONS = {"retry_base": 0.01, "max_retry_wait": 1.0}  # as the e2e `bot` fixture


class HookTeam(Team):
    """The e2e Team, plus a hook run once when a step's first model request arrives (to inject a fault at a
    precise point of the run)."""

    def __init__(self, fake: FakeAnthropic) -> None:
        super().__init__(fake)
        self.hooks: dict[str, Callable[[], Any]] = {}

    async def respond(self, request: dict[str, Any]) -> dict[str, Any]:
        first = request["messages"][0]["content"]
        m = STEP.search(first if isinstance(first, str) else first[-1]["text"])
        if m and (hook := self.hooks.pop(m.group(1), None)) is not None:
            outcome = hook()
            if asyncio.iscoroutine(outcome):
                await outcome
        return await super().respond(request)


@pytest.fixture
async def team(fake: FakeAnthropic) -> HookTeam:
    return HookTeam(fake)


async def deliver(bot: Any, sandbox: Any, event: str, payload: dict[str, Any], *, delivery: str | None = None) -> None:
    """Post one delivery and wait for its job to end (whether it succeeded or failed)."""
    rt, client = bot
    sandbox.seed_from_payload(payload)
    resp = await post_webhook(client, event, payload, delivery=delivery)
    assert resp.status == 202, await resp.text()
    await rt.jobs.drained(30)


def assert_nothing_posted_twice(sandbox: Any) -> None:
    """Every comment, issue and pull request the bot created carries a marker no other creation carries, and
    every bot comment on GitHub carries exactly one marker."""
    created = [k for w in sandbox.writes if w.kind in ("comment", "issue", "pull")
               for k in markers_in(w.data.get("body") or "")]
    assert created, "nothing was posted: vacuous"
    twice = [k for k, n in Counter(created).items() if n > 1]
    assert not twice, f"posted twice: {twice}"
    for number in {w.number for w in sandbox.writes if w.kind == "comment"}:
        for c in sandbox.comments(REPO, number):
            if c["user"]["type"] == "Bot":
                assert len(markers_in(c["body"])) == 1, c["body"]


def retried(sandbox: Any, method: str, path: str, status: int) -> bool:
    """A request answered `status` was sent again and then succeeded."""
    seen = [r.status for r in sandbox.requests if r.method == method and r.path == path]
    return status in seen and any(200 <= s < 300 for s in seen[seen.index(status) + 1:])


async def run_of(rt: Runtime, number: int) -> Any:
    return await rt.store.active_run(f"{REPO}#{number}")


def comment_on(sandbox: Any, number: int, body: str, **kw: Any) -> dict[str, Any]:
    """An issue_comment payload whose issue carries the thread's current labels (as GitHub's does), so seeding
    it into the sandbox does not reset them."""
    payload = comment_payload(number, body, **kw)
    payload["issue"]["labels"] = sandbox.issue(REPO, number)["labels"]
    return payload


def labels(sandbox: Any, number: int) -> list[str]:
    return [lab["name"] for lab in sandbox.issue(REPO, number)["labels"]]


def escalation(sandbox: Any, number: int) -> str:
    found = [c["body"] for c in sandbox.comments(REPO, number) if "## Escalation Required" in c["body"]]
    assert len(found) == 1, f"{len(found)} escalation comments"
    return found[0]


# ---- GitHub ------------------------------------------------------------------------------------

FATAL = {
    "500": (500, {}),
    "rate-limit-beyond-max-wait": (403, {"x-ratelimit-remaining": "0",
                                         "x-ratelimit-reset": str(int(time.time()) + 3600)}),
}


@pytest.mark.parametrize("fault", sorted(FATAL))
async def test_a_write_failing_mid_run_is_resumed_by_the_next_command(fault: str, bot: Any, sandbox: Any,
                                                                      team: HookTeam) -> None:
    """Comment POSTs keep failing mid-run: a POST is not re-sent blindly by the client (it may have landed);
    the job is retried with backoff until its attempts are spent, then fails, and the run record keeps its
    outbox. Once GitHub is back, the next command on the thread works the outbox off and the run completes,
    with every comment posted once."""
    rt, _ = bot
    status, headers = FATAL[fault]
    sandbox.set_permission(REPO, "maintainer", "write")
    comments = rf"/repos/{REPO}/issues/40/comments"
    team.hooks["IMPLEMENTATION"] = lambda: sandbox.fail("POST", comments, status, headers=headers, times=-1)
    started = time.monotonic()
    await deliver(bot, sandbox, "issues", issue_payload(40, ["devops"]))
    assert time.monotonic() - started < 20, "the client slept out a rate limit far beyond its max_wait"
    assert await rt.store.job_states() == {"failed": 1}
    # Six attempts of the job, then three of the note telling the thread it failed (refused too: an ERROR line).
    assert len([r for r in sandbox.requests if r.method == "POST" and r.path == comments and r.status == status]) == 9
    assert rt.metrics.silent_jobs.labels("issues")._value.get() == 1
    sandbox.clear_faults()
    assert posts(sandbox, 40) == DEVOPS[:2]  # the failed POST did not land
    record = await run_of(rt, 40)
    assert record.state == "running"
    assert {"type": "PostStep", "step": "implementation", "iteration": 1} in record.data["outbox"]

    await deliver(bot, sandbox, "issue_comment", comment_on(sandbox, 40, "/retry", comment_id=4001))
    assert [k for k in posts(sandbox, 40) if not k.startswith("reply")] == DEVOPS
    await deliver(bot, sandbox, "issue_comment", comment_on(sandbox, 40, "/approve", comment_id=4002))
    assert posts(sandbox, 40)[-1] == "done" and await run_of(rt, 40) is None
    assert len(sandbox.written("pull")) == 1
    assert_nothing_posted_twice(sandbox)


async def test_a_write_failing_once_mid_run_does_not_leave_a_silent_dead_run(bot: Any, sandbox: Any,
                                                                            team: HookTeam) -> None:
    comments = rf"/repos/{REPO}/issues/41/comments"
    team.hooks["IMPLEMENTATION"] = lambda: sandbox.fail("POST", comments, 500)
    await deliver(bot, sandbox, "issues", issue_payload(41, ["devops"]))
    await bot[0].jobs.drained(30)  # the job is retried after a backoff and resumes the run
    assert posts(sandbox, 41) == DEVOPS
    assert await bot[0].store.job_states() == {"done": 1}
    assert_nothing_posted_twice(sandbox)


async def test_transient_5xx_and_gateway_timeouts_on_reads_and_edits_are_retried(bot: Any, sandbox: Any,
                                                                                 team: HookTeam) -> None:
    """GETs, PATCHes and the token request are safe to send again: a 5xx (or a slow 504) is retried with
    backoff and the run completes as if nothing happened."""
    rt, _ = bot
    sandbox.fail("POST", r"/app/installations/\d+/access_tokens", 502)
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 500)
    # A new run lists its thread once, before its first comment (bot/run/writes.py): that listing is the one hit.
    sandbox.fail("GET", rf"/repos/{REPO}/issues/42/comments", 504, delay=0.5)
    sandbox.fail("GET", rf"/repos/{REPO}/issues/42", 502, times=2)  # the job's one read of its issue
    team.hooks["IMPLEMENTATION"] = lambda: sandbox.fail("PATCH", rf"/repos/{REPO}/issues/comments/\d+", 503)
    await deliver(bot, sandbox, "issues", issue_payload(42, ["devops"]))
    assert await rt.store.job_states() == {"done": 1}
    assert posts(sandbox, 42) == DEVOPS
    for method, path, status in (("GET", f"/repos/{REPO}/git/ref/heads/master", 500),
                                 ("GET", f"/repos/{REPO}/issues/42/comments", 504),
                                 ("GET", f"/repos/{REPO}/issues/42", 502)):
        assert retried(sandbox, method, path, status), (method, path, status)
    assert [r.status for r in sandbox.requests if r.path.endswith("/access_tokens")] == [502, 201]
    assert any(r.method == "PATCH" and r.status == 503 for r in sandbox.requests)
    assert_nothing_posted_twice(sandbox)


RATE_LIMITS = {
    "primary": lambda: (403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 1)},
                        "API rate limit exceeded for installation ID 2311213."),
    "secondary-403": lambda: (403, {"retry-after": "1"},
                              "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
                              "again."),
    "secondary-429": lambda: (429, {"retry-after": "1"}, "Too many requests"),
}


@pytest.mark.parametrize("kind", sorted(RATE_LIMITS))
async def test_a_rate_limit_mid_run_is_waited_out(kind: str, bot: Any, sandbox: Any, team: HookTeam) -> None:
    """The implementation comment's POST is rate-limited: a rate-limited request did not land, so the client
    waits as GitHub says and sends it again; the comment is posted once and the run completes."""
    rt, _ = bot
    comments = f"/repos/{REPO}/issues/43/comments"
    hit: list[float] = []

    def limit() -> None:
        status, headers, message = RATE_LIMITS[kind]()
        hit.append(time.monotonic())
        sandbox.fail("POST", comments, status, headers=headers,
                     body={"message": message, "documentation_url": "https://docs.github.com/rest"})
    team.hooks["IMPLEMENTATION"] = limit
    await deliver(bot, sandbox, "issues", issue_payload(43, ["devops"]))
    assert await rt.store.job_states() == {"done": 1}
    assert posts(sandbox, 43) == DEVOPS
    status = 429 if kind.endswith("429") else 403
    assert retried(sandbox, "POST", comments, status)
    if kind != "primary":  # retry-after: 1 was honoured (the primary reset falls within the next second)
        assert time.monotonic() - hit[0] >= 1.0
    assert_nothing_posted_twice(sandbox)


# ---- the Anthropic API -------------------------------------------------------------------------

OUTAGES = {
    "529-overloaded": (529, {}, "(last: 529 overloaded_error: Overloaded)", 4),
    "429-rate-limited": (429, {"retry-after": "0"}, "(last: 429 rate_limit_error", 4),
    "429-retry-after-too-long": (429, {"retry-after": "120"}, "asked to wait 120 s", 1),
    "500-internal": (500, {}, "(last: 500 api_error", 4),
}


@pytest.mark.parametrize("outage", sorted(OUTAGES))
async def test_a_long_model_outage_escalates_readably_and_retry_completes(outage: str, bot: Any, sandbox: Any,
                                                                          team: HookTeam, fake: FakeAnthropic) -> None:
    """The API fails every call: after the runtime's retries with backoff (none when the API asks for a wait
    beyond the cap) the step becomes a readable escalation with options, labelled needs-decision; once the API
    is back, `/retry` by a maintainer runs the step again and the run completes."""
    rt, _ = bot
    status, headers, says, attempts = OUTAGES[outage]
    sandbox.set_permission(REPO, "maintainer", "maintain")
    fake.fail(status, times=-1, headers=headers)
    await deliver(bot, sandbox, "issues", issue_payload(44, ["devops"]))
    assert await rt.store.job_states() == {"done": 1}
    assert len(fake.requests) == attempts and all(r["_status"] == status for r in fake.requests)
    esc = escalation(sandbox, 44)
    for part in ("**Issue**: The Anthropic API", says, "**Workflow Stage**: TRIAGE", "1. **Run the step again**",
                 "2. **Skip this step and continue**", "3. **Stop this workflow**", "Reply `/approve N`"):
        assert part in esc, part
    assert "needs-decision" in labels(sandbox, 44)
    assert (await run_of(rt, 44)).state == "escalated"
    assert "Escalated" in next(c["body"] for c in sandbox.comments(REPO, 44) if "triage-lead:status:" in c["body"])

    fake.clear_faults()
    await deliver(bot, sandbox, "issue_comment", comment_on(sandbox, 44, "/retry", comment_id=4401))
    assert posts(sandbox, 44)[-1] == "approval" and (await run_of(rt, 44)).state == "waiting"
    assert "needs-decision" not in labels(sandbox, 44) and sandbox.written("label_removed")
    escalation(sandbox, 44)  # still exactly one
    assert_nothing_posted_twice(sandbox)


async def test_a_brief_model_outage_is_ridden_out(bot: Any, sandbox: Any, team: HookTeam, fake: FakeAnthropic) -> None:
    rt, _ = bot
    fake.fail(529, times=2)
    fake.fail(429, times=1, headers={"retry-after": "0"})
    await deliver(bot, sandbox, "issues", issue_payload(45, ["devops"]))
    assert [r["_status"] for r in fake.requests][:4] == [529, 529, 429, 200]
    assert posts(sandbox, 45) == DEVOPS
    assert not [c for c in sandbox.comments(REPO, 45) if "Escalation" in c["body"]]
    assert_nothing_posted_twice(sandbox)


@pytest.fixture
async def slow_model_bot(settings: Settings, fake: FakeAnthropic, team: HookTeam, sandbox: Any,
                         aiohttp_client: Any) -> AsyncIterator[Any]:
    """The e2e bot with a 0.5 s timeout on each model call and two attempts per call."""
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url)
    rt = await Runtime(s, github_max_wait=5.0, github_backoff=0.01,
                       agent_options=AGENT_OPTIONS | {"call_timeout": 0.5, "attempts": 2}).start()
    yield rt, await aiohttp_client(rt.web_app())
    await rt.close()


async def test_model_calls_timing_out_escalate_readably(slow_model_bot: Any, sandbox: Any, team: HookTeam,
                                                        fake: FakeAnthropic) -> None:
    rt, _ = slow_model_bot
    sandbox.set_permission(REPO, "maintainer", "write")
    fake.delay = 1.5
    await deliver(slow_model_bot, sandbox, "issues", issue_payload(46, ["devops"]))
    assert len(fake.requests) == 2
    assert "The Anthropic API was unavailable after 2 attempts (last: timed out)" in escalation(sandbox, 46)
    fake.delay = 0.0
    await deliver(slow_model_bot, sandbox, "issue_comment", comment_on(sandbox, 46, "/retry", comment_id=4601))
    assert posts(sandbox, 46)[-1] == "approval"
    assert_nothing_posted_twice(sandbox)


# ---- the database ------------------------------------------------------------------------------

async def test_an_unwritable_database_answers_503_and_the_redelivery_is_processed_once(bot: Any, sandbox: Any,
                                                                                       team: HookTeam) -> None:
    """With the SQLite store refusing writes the webhook answers 503, so GitHub records a failed delivery;
    GitHub's redelivery (same delivery id) after the database is back runs once, a second one is a duplicate."""
    rt, client = bot
    payload = issue_payload(47, ["devops"])
    sandbox.seed_from_payload(payload)
    # Read-only from now on: what a full disk or a read-only volume does to every write.
    await rt.store._run(lambda db: db.execute("PRAGMA query_only = ON"))
    await rt.store._run_hook(lambda db: db.execute("PRAGMA query_only = ON"))  # the webhook's own connection
    resp = await post_webhook(client, "issues", payload, delivery="d-47")
    assert resp.status == 503 and "redeliver" in (await resp.json())["error"]
    await rt.store._run(lambda db: db.execute("PRAGMA query_only = OFF"))
    await rt.store._run_hook(lambda db: db.execute("PRAGMA query_only = OFF"))
    assert await rt.store.job_states() == {}  # nothing half-recorded
    assert not sandbox.writes

    resp = await post_webhook(client, "issues", payload, delivery="d-47")
    assert resp.status == 202
    await rt.jobs.drained(30)
    resp = await post_webhook(client, "issues", payload, delivery="d-47")
    assert resp.status == 200 and (await resp.json())["status"] == "duplicate"
    await rt.jobs.drained(30)
    assert posts(sandbox, 47) == DEVOPS
    assert await rt.store.job_states() == {"done": 1}
    assert_nothing_posted_twice(sandbox)


async def test_a_closed_database_answers_503(settings: Settings, sandbox: Any, aiohttp_client: Any) -> None:
    rt = await Runtime(settings, github_max_wait=5.0, github_backoff=0.01).start()
    client = await aiohttp_client(rt.web_app())
    try:
        await rt.store.close()
        resp = await post_webhook(client, "issues", issue_payload(48, ["devops"]))
        assert resp.status == 503
    finally:
        await rt.jobs.close()
        await rt.session.close()


# ---- the process -------------------------------------------------------------------------------

async def test_a_process_dying_mid_run_resumes_from_the_outbox_on_restart(settings: Settings, fake: FakeAnthropic,
                                                                          team: HookTeam, sandbox: Any,
                                                                          aiohttp_client: Any) -> None:
    """The process stops while a step's model call is in flight: on the next start the job is picked up
    again, the run resumes from its stored outbox, and what was already posted is edited, not re-posted."""
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url)
    in_flight, release = asyncio.Event(), asyncio.Event()

    async def hang() -> None:
        in_flight.set()
        await release.wait()
    team.hooks["IMPLEMENTATION"] = hang
    first = await Runtime(s, github_max_wait=5.0, github_backoff=0.01, agent_options=AGENT_OPTIONS).start()
    payload = issue_payload(49, ["devops"])
    sandbox.seed_from_payload(payload)
    resp = await post_webhook(await aiohttp_client(first.web_app()), "issues", payload)
    assert resp.status == 202
    await asyncio.wait_for(in_flight.wait(), 10)
    status_id = next(c["id"] for c in sandbox.comments(REPO, 49) if "triage-lead:status:" in c["body"])
    await first.close()  # the process dies: the job is left 'running'
    release.set()
    assert posts(sandbox, 49) == DEVOPS[:2]

    second = await Runtime(s, github_max_wait=5.0, github_backoff=0.01, agent_options=AGENT_OPTIONS).start()
    try:
        await second.jobs.drained(30)
        assert await second.store.job_states() == {"done": 1}
        assert (await run_of(second, 49)).state == "waiting"
    finally:
        await second.close()
    assert posts(sandbox, 49) == DEVOPS
    assert next(c["id"] for c in sandbox.comments(REPO, 49) if "triage-lead:status:" in c["body"]) == status_id
    assert_nothing_posted_twice(sandbox)
