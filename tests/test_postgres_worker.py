"""Procrastinate workers run in this process against real PostgreSQL: order per thread, failures, shutdown.

Handlers here are small recorders, so what a job saw and when is asserted directly; the worker
processes (``python -m bot worker``) are exercised in test_postgres_processes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.core.markers import markers_in
from bot.run.pg_worker import ProcrastinateJobs, work
from bot.run.runtime import Runtime
from bot.settings import Settings
from bot.store import Job
from bot.store.postgres import PostgresStore
from tests.conftest import load_fixture, post_webhook
from tests.test_postgres_store import delivery, fresh_schema


@pytest.fixture
async def pg() -> AsyncIterator[PostgresStore]:
    async with fresh_schema() as url:
        store = PostgresStore(url)
        await store.open()
        yield store
        await store.close()


@contextlib.asynccontextmanager
async def workers(store: PostgresStore, handler: Callable[[Job], Awaitable[None]], n: int = 1, *,
                  concurrency: int = 4, shutdown_grace: float = 5.0, retry_base: float = 0.01,
                  **hooks: Any) -> AsyncIterator[asyncio.Event]:
    """``n`` procrastinate workers in this process; stopped (gracefully) when the block ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(work(store, handler, concurrency=concurrency, stop=stop, stalled_after=3.0,
                                      shutdown_grace=shutdown_grace, name=f"w{i}", retry_base=retry_base, **hooks))
             for i in range(n)]
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 15)


async def procrastinate_statuses(store: PostgresStore) -> list[str]:
    return [r["status"] for r in await store._all("SELECT status::text FROM procrastinate_jobs ORDER BY id")]


async def test_webhook_to_worker_end_to_end(pg: PostgresStore, settings: Settings, sandbox: Any,
                                            aiohttp_client: Any) -> None:
    runtime = await Runtime(settings.with_overrides(database_url=pg.url), github_max_wait=5.0,
                            github_backoff=0.01).start()
    try:
        assert isinstance(runtime.jobs, ProcrastinateJobs)
        client = await aiohttp_client(runtime.web_app())
        payload = load_fixture("issues.opened.json")
        sandbox.seed_from_payload(payload)
        assert (await post_webhook(client, "issues", payload)).status == 202
        assert await runtime.store.job_states() == {"queued": 1}  # the web process runs nothing itself
        async with workers(runtime.store, runtime.handle):  # type: ignore[arg-type]
            await runtime.jobs.drained(10)
        comments = sandbox.comments("Codertocat/Hello-World", 1)
        keys = [k for c in comments for k in markers_in(c["body"])]
        assert comments and len(keys) == len(set(keys))  # the bot's posts, none twice
        assert await runtime.store.job_states() == {"done": 1}
        assert await procrastinate_statuses(runtime.store) == ["succeeded"]  # type: ignore[arg-type]
    finally:
        await runtime.close()


async def test_jobs_of_one_thread_run_one_at_a_time_in_order(pg: PostgresStore) -> None:
    seen: list[tuple[str, str, float]] = []
    running = 0
    most = 0

    async def handler(job: Job) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        seen.append(("start", job.delivery_id, time.monotonic()))
        await asyncio.sleep(0.2)
        seen.append(("end", job.delivery_id, time.monotonic()))
        running -= 1

    for i in (1, 2, 3):  # enqueued together, before any worker runs, interleaved with another issue
        await pg.accept_delivery(delivery(f"a{i}", thread="o/r#1"))
        await pg.accept_delivery(delivery(f"b{i}", thread="o/r#2"))
    started = time.monotonic()
    async with workers(pg, handler, n=2, concurrency=4):
        await ProcrastinateJobs(pg, handler).drained(15)
    elapsed = time.monotonic() - started

    for prefix in ("d-a", "d-b"):
        mine = [(what, d) for what, d, _ in seen if d.startswith(prefix)]
        assert mine == [(w, f"{prefix}{i}") for i in (1, 2, 3) for w in ("start", "end")]
    assert most == 2  # the two issues ran side by side, never two jobs of one issue
    # The next job of a thread starts when the previous one ends, not at the next poll (5 s):
    # the store's trigger wakes the workers when a job releases its thread's lock.
    assert elapsed < 4.0, seen
    assert await pg.job_states() == {"done": 6}


class Refused(Exception):
    """Like gidgethub's 4xx errors: trying again will not help."""

    status_code = 422


async def test_a_failed_job_is_recorded_and_the_thread_moves_on(pg: PostgresStore) -> None:
    async def handler(job: Job) -> None:
        if job.delivery_id == "d-2":
            raise Refused("GitHub said no")

    for i in (1, 2, 3):
        await pg.accept_delivery(delivery(i))
    async with workers(pg, handler):
        await ProcrastinateJobs(pg, handler).drained(10)
    rows = await pg._all("SELECT delivery_id, state, error, attempts FROM jobs ORDER BY id")
    assert [(r["delivery_id"], r["state"], r["error"], r["attempts"]) for r in rows] == [
        ("d-1", "done", None, 1), ("d-2", "failed", "Refused: GitHub answered 422 to a request: GitHub said no", 1), ("d-3", "done", None, 1)]
    assert await procrastinate_statuses(pg) == ["succeeded", "failed", "succeeded"]


async def test_an_outage_is_retried_with_backoff_until_it_passes(pg: PostgresStore) -> None:
    seen: list[int] = []

    async def handler(job: Job) -> None:
        seen.append(job.attempts)
        if job.attempts < 3:
            raise ConnectionError("GitHub unreachable")

    await pg.accept_delivery(delivery(1))
    async with workers(pg, handler):
        await ProcrastinateJobs(pg, handler).drained(20)
    assert seen == [1, 2, 3]
    assert await pg.job_states() == {"done": 1}


async def test_shutdown_puts_an_unfinished_job_back_in_the_queue(pg: PostgresStore) -> None:
    started = asyncio.Event()

    async def slow(job: Job) -> None:
        started.set()
        await asyncio.sleep(60)

    await pg.accept_delivery(delivery(1))
    async with workers(pg, slow, shutdown_grace=0.3):
        await asyncio.wait_for(started.wait(), 10)
        assert await pg.job_states() == {"running": 1}
    assert await pg.job_states() == {"queued": 1}  # SIGTERM outlasted the grace period: nothing lost
    assert await procrastinate_statuses(pg) == ["todo"]

    done: list[int] = []

    async def quick(job: Job) -> None:
        done.append(job.attempts)

    async with workers(pg, quick):
        await ProcrastinateJobs(pg, quick).drained(10)
    assert done == [2]
    assert await pg.job_states() == {"done": 1}


async def test_a_failed_job_requeued_runs_again_once_and_the_failure_is_told(pg: PostgresStore) -> None:
    """`/retry`, a redelivery or `python -m bot jobs retry` on PostgreSQL: a new procrastinate job for the
    same row, run once; the worker told the failure first (on_failed) and the success after (on_done)."""
    seen: list[int] = []
    told: list[tuple[str, int]] = []

    async def handler(job: Job) -> None:
        seen.append(job.attempts)
        if len(seen) == 1:
            raise Refused("GitHub said no")

    async def on_failed(job: Job, outcome: Any) -> None:
        told.append(("failed", job.id))

    async def on_done(job: Job) -> None:
        told.append(("done", job.id))

    await pg.accept_delivery(delivery(1))
    async with workers(pg, handler, on_failed=on_failed, on_done=on_done):
        await ProcrastinateJobs(pg, handler).drained(10)
        [failed] = await pg.failed_jobs()
        assert await pg.requeue_failed(failed.job.id) and not await pg.requeue_failed(failed.job.id)
        await ProcrastinateJobs(pg, handler).drained(10)
    assert seen == [1, 1] and await pg.job_states() == {"done": 1}  # attempts start again from one
    assert told == [("failed", failed.job.id), ("done", failed.job.id)]
    assert await pg.failed_jobs() == []
