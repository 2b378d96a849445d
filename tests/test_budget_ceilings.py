"""Budgets are ceilings: a repository's config can only lower the operator's limits, and every model call is
reserved in the store before it is made, so concurrent jobs and several workers never pass a cap together.

Through the webhook over HTTP, the real bot (store, job runner, engine, executor, anthropic SDK) against the
sandbox GitHub and the local Messages API server, whose own count of the tokens it served is the witness.

A run whose estimate is more than a budget has left waits for a maintainer's ``/approve budget`` before its first
call (tests/test_budget_wait.py); the runs here are approved so, and the operator's ceilings still stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.agents.models import Budget, BudgetExceeded
from bot.core.markers import markers_in
from bot.run.runtime import Runtime
from bot.sandbox.anthropic import FakeAnthropic
from bot.sandbox.anthropic.replies import as_reply
from bot.sandbox.team import Team
from bot.settings import Settings
from bot.store import Store
from tests.conftest import INSTALLATION, load_fixture, post_webhook
from tests.test_workflows_e2e import REPO, body_of, comment_payload, fake, issue_payload, team  # noqa: F401

MAX_TOKENS = 2_000  # each call reserves its input estimate plus this
# Writes unpaced: pacing is not under test here (tests/test_shared_pacing.py), and eight whole runs would wait
# for GitHub's minute of writes to pass.
UNPACED = {"writes_per_minute": 100_000, "writes_per_hour": 100_000}
RAISE_EVERYTHING = "budgets: {run_tokens: 900000000000, day_tokens: 900000000000}\n"


def served_tokens(fake: FakeAnthropic) -> int:
    """Every token the Messages API server billed (input, cache reads and writes, output)."""
    return sum(u.get("input_tokens", 0) + u.get("output_tokens", 0) + u.get("cache_read_input_tokens", 0)
               + u.get("cache_creation_input_tokens", 0) for u in fake.usage_log)


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


Start = Callable[..., Any]


@pytest.fixture
async def start(settings: Settings, fake: FakeAnthropic, team: Team, sandbox: Any,  # noqa: F811
                aiohttp_client: Any) -> AsyncIterator[Start]:
    """Starts the bot with the operator's settings given; yields (runtime, client)."""
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    started: list[Runtime] = []

    async def go(**overrides: Any) -> tuple[Runtime, Any]:
        s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url,
                                    **UNPACED, **overrides)
        rt = await Runtime(s, github_max_wait=5.0, github_backoff=0.01, agent_options={
            "retry_base": 0.01, "max_retry_wait": 1.0, "max_tokens": MAX_TOKENS}).start()
        started.append(rt)
        return rt, await aiohttp_client(rt.web_app())

    yield go
    for rt in started:
        await rt.close()


async def deliver(rt: Runtime, client: Any, sandbox: Any, payloads: list[dict[str, Any]], event: str = "issues") -> None:
    """Every payload over HTTP at once; then wait for all jobs to end (none may fail)."""
    for p in payloads:
        sandbox.seed_from_payload(p)
    answers = await asyncio.gather(*(post_webhook(client, event, p) for p in payloads))
    assert [a.status for a in answers] == [202] * len(payloads)
    await rt.jobs.drained(60)
    assert "failed" not in await rt.store.job_states()


def approvals(sandbox: Any, numbers: Any) -> list[dict[str, Any]]:
    """A maintainer's ``/approve budget`` on each thread: its run waits for it (its estimate is over a ceiling)."""
    sandbox.set_permission(REPO, "maintainer", "write")
    return [comment_payload(n, "/approve budget", comment_id=70_000 + n) for n in numbers]


async def approved(rt: Runtime, client: Any, sandbox: Any, numbers: Any) -> None:
    """The runs of these threads wait for their budget; a maintainer approves them all at once."""
    for n in numbers:
        assert (await run_of(rt.store, n)).state == "budget"
    await deliver(rt, client, sandbox, approvals(sandbox, numbers), "issue_comment")


async def run_of(store: Store, number: int) -> Any:
    record = await store.active_run(f"{REPO}#{number}")
    assert record is not None
    return record


def approval_posted(sandbox: Any, number: int) -> bool:
    return any(k.startswith("approval") for c in sandbox.comments(REPO, number) for k in markers_in(c["body"]))


# ---- a repository's config can only lower the operator's limits -------------------------------------

async def test_a_repository_config_cannot_raise_the_run_budget(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    sandbox.set_file(REPO, ".github/triage-lead.yml", RAISE_EVERYTHING)
    rt, client = await start(run_token_budget=9_000)
    await deliver(rt, client, sandbox, [issue_payload(30, ["api"])])
    await approved(rt, client, sandbox, [30])
    run = await run_of(rt.store, 30)
    assert run.state == "escalated" and not approval_posted(sandbox, 30)
    assert "token budget reached: this run has used" in body_of(sandbox, 30, "escalation")
    assert "of its 9,000 tokens" in body_of(sandbox, 30, "escalation")
    assert 0 < len(team.calls) < 5  # some steps ran, the run did not reach its end
    assert served_tokens(fake) <= 9_000
    assert await rt.store.spent(f"run:{run.id}") == served_tokens(fake)  # every call settled with what it used


async def test_a_repository_config_cannot_raise_the_day_budget(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    sandbox.set_file(REPO, ".github/triage-lead.yml", RAISE_EVERYTHING)
    rt, client = await start(day_token_budget=9_000)
    await deliver(rt, client, sandbox, [issue_payload(31, ["api"])])
    await approved(rt, client, sandbox, [31])
    assert (await run_of(rt.store, 31)).state == "escalated" and not approval_posted(sandbox, 31)
    escalation = body_of(sandbox, 31, "escalation")
    assert "token budget reached: this installation has used" in escalation and "of its 9,000 tokens" in escalation
    assert 0 < served_tokens(fake) <= 9_000
    assert await rt.store.spent(f"day:{INSTALLATION}:{today()}") == served_tokens(fake)


def costly(fake: FakeAnthropic, team: Team, output_tokens: int) -> None:
    """The team's first answer bills ``output_tokens``: a run that fit its budgets at start then costs more than
    its estimate said."""
    billed = [output_tokens]

    async def respond(request: dict[str, Any]) -> Any:
        reply = as_reply(await team.respond(request))
        return dataclasses.replace(reply, output_tokens=billed.pop()) if billed else reply
    fake.responder = respond


async def test_a_repositorys_day_budget_caps_its_own_spending_within_the_installations(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    sandbox.set_file(REPO, ".github/triage-lead.yml", "budgets: {day_tokens: 400000}\n")
    rt, client = await start()  # the operator's day budget: 50,000,000
    costly(fake, team, 400_000)  # the estimate fits in 400,000; the first call alone spends them
    await deliver(rt, client, sandbox, [issue_payload(32, ["api"])])
    escalation = body_of(sandbox, 32, "escalation")
    assert "token budget reached: this repository has used" in escalation and "of its 400,000 tokens" in escalation
    assert [c.title for c in team.calls] == ["TRIAGE"]
    assert await rt.store.spent(f"day:{REPO.lower()}:{today()}") == served_tokens(fake)
    # The installation's count saw the same calls: the repository's cap is within it, not instead of it.
    assert await rt.store.spent(f"day:{INSTALLATION}:{today()}") == served_tokens(fake)


async def test_a_failed_call_is_settled_with_nothing(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client = await start()
    fake.fail(400, message="a request the API refuses")
    await deliver(rt, client, sandbox, [issue_payload(33, ["api"])])
    run = await run_of(rt.store, 33)
    assert run.state == "escalated" and "a request the API refuses" in body_of(sandbox, 33, "escalation")
    assert served_tokens(fake) == 0 and len(fake.requests) == 1
    assert await rt.store.spent(f"run:{run.id}") == 0
    assert await rt.store.spent(f"day:{INSTALLATION}:{today()}") == 0  # nothing held for a call that failed


# ---- eight jobs at once against a small day budget --------------------------------------------------

DAY_CAP = 24_000
ISSUES = range(40, 48)


@contextlib.asynccontextmanager
async def watching(store: Store, key: str) -> AsyncIterator[list[int]]:
    """Samples what the store holds (spent and reserved) under `key` while the block runs."""
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(await store.spent(key))
            await asyncio.sleep(0.005)

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def assert_within_the_day_cap(store: Store, sandbox: Any, fake: FakeAnthropic, samples: list[int]) -> None:
    key = f"day:{INSTALLATION}:{today()}"
    assert samples and max(samples) <= DAY_CAP, max(samples)  # reserved + spent, at every moment looked at
    assert 0 < served_tokens(fake) <= DAY_CAP
    assert await store.spent(key) == served_tokens(fake)  # all settled, at what the calls really used
    refused = [n for n in ISSUES if "this installation has used" in body_of(sandbox, n, "escalation")]
    assert refused, "the cap never bound: the test proves nothing"
    print(f"day cap {DAY_CAP:,}: {len(fake.usage_log)} calls served {served_tokens(fake):,} tokens; at most "
          f"{max(samples):,} held at once in {len(samples)} samples; {len(refused)} of {len(ISSUES)} runs refused")


async def test_eight_concurrent_jobs_never_pass_the_day_cap(
        start: Start, sandbox: Any, fake: FakeAnthropic, team: Team) -> None:  # noqa: F811
    rt, client = await start(day_token_budget=DAY_CAP)
    team.delay["TRIAGE"] = 0.05  # the jobs' first calls overlap
    await deliver(rt, client, sandbox, [issue_payload(n, ["api"]) for n in ISSUES])
    async with watching(rt.store, f"day:{INSTALLATION}:{today()}") as samples:
        await approved(rt, client, sandbox, ISSUES)
    await assert_within_the_day_cap(rt.store, sandbox, fake, samples)


async def test_eight_jobs_on_two_postgres_workers_never_pass_the_day_cap(
        settings: Settings, fake: FakeAnthropic, team: Team, sandbox: Any, aiohttp_client: Any) -> None:  # noqa: F811
    from tests.test_postgres_store import fresh_schema
    from tests.test_postgres_worker import workers

    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    team.delay["TRIAGE"] = 0.05
    async with fresh_schema() as url:
        s = settings.with_overrides(anthropic_api_key="sk-ant-test-key", anthropic_base_url=fake.url,
                                    database_url=url, day_token_budget=DAY_CAP, **UNPACED)
        options = {"retry_base": 0.01, "max_retry_wait": 1.0, "max_tokens": MAX_TOKENS}
        a, b = [await Runtime(s, github_max_wait=5.0, github_backoff=0.01, agent_options=options).start()
                for _ in range(2)]
        try:
            assert a.store is not b.store
            ran_on: list[str] = []

            def on(rt: Runtime, name: str) -> Callable[[Any], Any]:
                async def handle(job: Any) -> None:
                    ran_on.append(name)
                    await rt.handle(job)
                return handle
            client = await aiohttp_client(a.web_app())

            async def both(event: str, payloads: list[dict[str, Any]]) -> None:
                for p in payloads:
                    sandbox.seed_from_payload(p)
                answers = await asyncio.gather(*(post_webhook(client, event, p) for p in payloads))
                assert [r.status for r in answers] == [202] * len(payloads)
                async with workers(a.store, on(a, "a"), concurrency=4):  # type: ignore[arg-type]
                    async with workers(b.store, on(b, "b"), concurrency=4):  # type: ignore[arg-type]
                        await a.jobs.drained(60)
            await both("issues", [issue_payload(n, ["api"]) for n in ISSUES])
            assert all([(await run_of(a.store, n)).state == "budget" for n in ISSUES])
            async with watching(a.store, f"day:{INSTALLATION}:{today()}") as samples:
                await both("issue_comment", approvals(sandbox, ISSUES))
            assert await a.store.job_states() == {"done": 2 * len(ISSUES)}
            assert len(ran_on) == 2 * len(ISSUES)  # (which worker took which is the scheduler's affair)
            await assert_within_the_day_cap(a.store, sandbox, fake, samples)
        finally:
            await a.close()
            await b.close()


# ---- without a store: one process, the same reservations ----------------------------------------------

async def test_without_a_store_calls_in_parallel_share_one_budget() -> None:
    """A Budget on its own (no store) reserves in memory: two steps of a run in parallel cannot both take the
    room only one call has, and each call is settled at what it used."""
    budget = Budget(run_tokens=10_000, run_id="r1")
    async with budget.hold(6_000) as first:
        with pytest.raises(BudgetExceeded, match="this run has used 6,000 of its 10,000 tokens and the next model "
                                                 "call could need up to 6,000 more"):
            async with budget.hold(6_000):
                pass
        first.actual = 1_000
    async with budget.hold(6_000) as second:
        second.actual = 2_000
    assert budget.run_used == 3_000 and await budget.ledger.spent("run:r1") == 3_000


class SlowLedger:
    """A store-like ledger whose reserve lands only when the test says so, and whose settle can fail."""

    def __init__(self, *, settle_fails: bool = False) -> None:
        from bot.agents.models import LocalLedger
        self.inner, self.gate, self.settle_fails = LocalLedger(), asyncio.Event(), settle_fails

    async def reserve(self, reservation: str, amount: int, caps: Any) -> bool:
        await self.gate.wait()
        return await self.inner.reserve(reservation, amount, caps)

    async def settle(self, reservation: str, actual: int) -> None:
        if self.settle_fails:
            raise RuntimeError("store closed")
        await self.inner.settle(reservation, actual)

    async def spent(self, key: str) -> int:
        return await self.inner.spent(key)


async def test_a_job_cancelled_while_its_reservation_is_written_gives_it_back() -> None:
    ledger = SlowLedger()
    budget = Budget(run_tokens=100_000, run_id="r1", ledger=ledger)  # type: ignore[arg-type]

    async def call() -> None:
        async with budget.hold(20_000):
            pass
    tasks = [asyncio.ensure_future(call()) for _ in range(3)]
    await asyncio.sleep(0)
    for t in tasks:
        t.cancel()
    ledger.gate.set()  # the store's writes land after the cancellation
    await asyncio.gather(*tasks, return_exceptions=True)
    for _ in range(20):
        await asyncio.sleep(0)
    assert await ledger.spent("run:r1") == 0


async def test_a_settle_that_fails_is_logged_and_never_hides_the_calls_own_error(caplog: Any) -> None:
    ledger = SlowLedger(settle_fails=True)
    ledger.gate.set()
    budget = Budget(run_tokens=100_000, run_id="r1", ledger=ledger)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="the model's own failure"):
        async with budget.hold(20_000):
            raise ValueError("the model's own failure")
    assert any(r.levelname == "ERROR" and "could not be settled" in r.getMessage() for r in caplog.records)
