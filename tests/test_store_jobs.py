"""The store's side of "never silent, nothing lost", on SQLite and on PostgreSQL alike.

What the acknowledger, `/retry`, the redelivery sweep, `python -m bot jobs` and the config fallback ask of
the store: each query and each claim, on both databases (PostgreSQL skipped, saying why, without a server).
"""

from __future__ import annotations

import time
from typing import Any

from bot.store import Posted
from tests.test_store import delivery, store  # noqa: F401  (SQLite and PostgreSQL)


async def run_one(store: Any, thread: str = "o/r#1") -> Any:
    job = await store.claim_job(thread)
    assert job is not None
    return job


async def test_failed_jobs_are_listed_requeued_once_or_dismissed(store: Any) -> None:
    for i in (1, 2):
        await store.accept_delivery(delivery(i))
    first = await run_one(store)
    await store.finish_job(first.id, error="BadRequest: GitHub answered 422")
    second = await run_one(store)
    await store.finish_job(second.id, error="BadRequest: GitHub answered 403")
    listed = await store.failed_jobs("o/r#1")
    assert [i.job.id for i in listed] == [second.id, first.id] and listed[0].job.payload == {"n": 2}
    assert await store.failed_jobs("o/r#9") == []
    assert [i.job.id for i in await store.failed_jobs(repo="o/r")] == [second.id, first.id]  # the repository's
    assert await store.failed_jobs(repo="o/_") == [] and await store.failed_jobs(repo="o/r#") == []  # no wildcard
    assert await store.requeue_failed(first.id) and not await store.requeue_failed(first.id)
    info = await store.job_info(first.id)
    assert info.state == "queued" and info.job.attempts == 0
    assert await store.queued_threads() == ["o/r#1"]
    assert await store.dismiss_failed(second.id) and not await store.dismiss_failed(second.id)
    assert await store.failed_jobs() == []
    counts = await store.prune(0.0, now=time.time() + 1)
    assert counts["payloads"] == 1 and (await store.job_info(second.id)).job.payload == {}  # dismissed: pruned
    assert (await store.job_info(first.id)).job.payload == {"n": 1}  # queued again: kept


async def test_the_acknowledger_claims_each_job_once_and_a_retry_is_told_again(store: Any) -> None:
    await store.accept_delivery(delivery(1))
    assert await store.unnoted_jobs(older_than=60.0) == []  # not waiting long enough yet
    [waiting] = await store.unnoted_jobs(older_than=0.0)
    assert await store.mark_noted(waiting.job.id) and not await store.mark_noted(waiting.job.id)
    assert await store.unnoted_jobs(older_than=0.0) == []
    job = await run_one(store)
    await store.retry_job(job.id, after=30.0, error="GitHubBroken: 502")
    [again] = await store.unnoted_jobs(older_than=0.0)  # a new wait: told again, with why and until when
    assert again.error == "GitHubBroken: 502" and again.run_after > time.time() + 20
    assert await store.queued_threads() == []  # not before its retry time


async def test_posted_since_and_forget_posted(store: Any) -> None:
    before = time.time() - 1
    await store.remember_posted(Posted(marker="<!-- triage-lead:note:d-1 -->", repo="o/r", kind="comment",
                                       github_id=7, number=1))
    assert await store.posted_since("o/r", 1, before) and not await store.posted_since("o/r", 2, before)
    assert not await store.posted_since("o/r", 1, time.time() + 5)
    await store.forget_posted("<!-- triage-lead:note:d-1 -->")
    assert await store.find_posted("<!-- triage-lead:note:d-1 -->") is None


async def test_redelivery_claims_are_once_each_and_released_on_failure(store: Any) -> None:
    assert await store.claim_redelivery("g-1", 11) and not await store.claim_redelivery("g-1", 11)
    await store.release_redelivery("g-1")
    assert await store.claim_redelivery("g-1", 11)
    assert (await store.prune(0.0, now=time.time() + 1))["redeliveries"] == 1  # GitHub keeps them 3 days
    assert await store.claim_redelivery("g-1", 11)


async def test_the_last_good_config_of_a_repository(store: Any) -> None:
    assert await store.last_config("o/r") is None
    await store.save_config("o/r", "o/r:.github/triage-lead.yml", "dry_run: true\n")
    await store.save_config("o/r", "o/r:.github/triage-lead.yml", "dry_run: false\n")
    assert await store.last_config("o/r") == ("o/r:.github/triage-lead.yml", "dry_run: false\n")
    assert await store.last_config("o/other") is None
