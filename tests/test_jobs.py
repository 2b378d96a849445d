"""The in-process job runner: order per thread, retries with backoff, a brief store outage survived."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.jobs import MAX_ATTEMPTS, LocalJobs, retry_delay, retryable
from bot.store import Delivery, Job, SQLiteStore, StoreUnavailable


class FlakyStore(SQLiteStore):
    """The real SQLite store, whose next few job-outcome writes find the database unavailable."""

    failures = 2

    async def finish_job(self, job_id: int, *, error: str | None = None) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("database is locked")
        await super().finish_job(job_id, error=error)


def delivery(i: int, thread: str = "o/r#1") -> Delivery:
    return Delivery(id=f"d-{i}", event="issues", action="opened", installation_id=1, repo="o/r", thread=thread,
                    payload={"n": i})


def test_retry_policy() -> None:
    assert [retry_delay(a, 5.0) for a in range(1, MAX_ATTEMPTS + 1)] == [5.0, 20.0, 80.0, 320.0, 1280.0, None]
    assert retry_delay(9, 1000.0) is None and retry_delay(5, 1000.0) == 3600.0

    class Answer(Exception):
        def __init__(self, status: int) -> None:
            self.status_code = status

    assert retryable(ConnectionError()) and retryable(Answer(502)) and retryable(Answer(429))
    assert not retryable(Answer(404)) and not retryable(Answer(422))


async def test_order_per_thread_retries_and_a_store_outage(tmp_path: Path) -> None:
    store = FlakyStore(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    await store.open()
    seen: list[tuple[int, int]] = []

    async def handler(job: Job) -> None:
        seen.append((job.payload["n"], job.attempts))
        if job.payload["n"] == 1 and job.attempts == 1:
            raise ConnectionError("GitHub unreachable")

    jobs = LocalJobs(store, handler, retry_base=0.01)
    for i in (1, 2, 3):
        await store.accept_delivery(delivery(i))
        jobs.kick("o/r#1")
    await jobs.drained(10)
    assert seen == [(1, 1), (1, 2), (2, 1), (3, 1)]  # the retry keeps its place: later events wait behind it
    assert await store.job_states() == {"done": 3}
    await jobs.close()
    await store.close()
