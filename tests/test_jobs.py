"""The in-process job runner: order per thread, retries with backoff, a brief store outage survived."""

from __future__ import annotations

from pathlib import Path

from bot.github.client import TokenRefused, Uninstalled
from bot.run.jobs import MAX_ATTEMPTS, NOT_FOUND_ATTEMPTS, LocalJobs, judge, retry_delay
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
    def __init__(self, status: int, message: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code, self.headers = status, headers or {}


def test_transient_answers_are_retried_and_refusals_are_not() -> None:
    retried = [ConnectionError(), TimeoutError(), StoreUnavailable("locked"), Answer(502), Answer(429),
               Answer(401), Answer(403, "You have exceeded a secondary rate limit"),
               Answer(403, headers={"x-ratelimit-remaining": "0"}), TokenRefused(1, 422, "bad"), Uninstalled(1)]
    assert [judge(e, 1, 5.0).retry_in for e in retried] == [5.0] * len(retried)
    refused = [Answer(403, "Resource not accessible by integration"), Answer(422), Answer(400), Answer(409),
               Answer(410)]
    assert [judge(e, 1, 5.0).retry_in for e in refused] == [None] * len(refused)
    bugs = [KeyError("number"), TypeError("'NoneType' object is not subscriptable"), ValueError("x")]
    assert [judge(e, 1, 5.0).retry_in for e in bugs] == [None] * len(bugs)  # a bug: told at once


def test_not_found_and_uninstalled_get_fewer_tries_and_an_uninstalled_app_tells_nobody() -> None:
    assert judge(Answer(404), NOT_FOUND_ATTEMPTS - 1, 5.0).retry_in is not None  # replication lag, perhaps
    assert judge(Answer(404), NOT_FOUND_ATTEMPTS, 5.0).retry_in is None
    assert judge(Answer(502), NOT_FOUND_ATTEMPTS, 5.0).retry_in is not None
    assert judge(Uninstalled(7), NOT_FOUND_ATTEMPTS, 5.0).retry_in is None
    assert not judge(Uninstalled(7), 1, 5.0).tell and judge(Answer(422), 1, 5.0).tell


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
