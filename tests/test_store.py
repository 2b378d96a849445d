"""The store's contract, run against every backend (PostgreSQL skips where no server is running)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.store import Delivery, Posted, PullFindings, RunRecord, SQLiteStore, StepRecord
from bot.store.migrations import MIGRATIONS


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    if request.param == "sqlite":
        s: Any = SQLiteStore(f"sqlite:///{tmp_path / 'store.sqlite3'}")
        await s.open()
        yield s
        await s.close()
        return
    from bot.store.postgres import PostgresStore
    from tests.test_postgres_store import fresh_schema  # skips the test when no server answers

    async with fresh_schema() as url:
        s = PostgresStore(url)
        await s.open()
        yield s
        await s.close()


def delivery(i: int | str, thread: str = "o/r#1") -> Delivery:
    return Delivery(id=f"d-{i}", event="issues", action="opened", installation_id=1, repo="o/r", thread=thread,
                    payload={"n": i})


async def test_migrations_are_applied_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    for _ in range(2):
        s = SQLiteStore(url)
        await s.open()
        assert await s.schema_version() == len(MIGRATIONS)
        await s.close()


async def test_delivery_once_and_jobs_in_order_per_thread(store: Any) -> None:
    assert await store.accept_delivery(delivery(1))
    assert not await store.accept_delivery(delivery(1))
    assert await store.accept_delivery(delivery(2))
    first = await store.claim_job("o/r#1")
    assert first is not None and first.payload == {"n": 1} and first.attempts == 1
    assert await store.claim_job("o/r#1") is None  # one at a time per thread
    await store.finish_job(first.id)
    second = await store.claim_job("o/r#1")
    assert second is not None and second.payload == {"n": 2}


async def test_ten_concurrent_copies_make_one_job(store: Any) -> None:
    taken = await asyncio.gather(*(store.accept_delivery(delivery("same")) for _ in range(10)))
    assert sorted(taken) == [False] * 9 + [True]
    assert await store.job_states() == {"queued": 1}


async def test_recover_requeues_what_a_dead_process_was_running(store: Any) -> None:
    await store.accept_delivery(delivery(1))
    await store.accept_delivery(delivery(2, thread="o/r#2"))
    job = await store.claim_job("o/r#1")
    assert job is not None
    assert await store.recover() == ["o/r#1", "o/r#2"]
    again = await store.claim_job("o/r#1")
    assert again is not None and again.id == job.id and again.attempts == 2


async def test_posted_markers(store: Any) -> None:
    p = Posted(marker="<!-- triage-lead:x -->", repo="o/r", kind="comment", github_id=7, number=1)
    await store.remember_posted(p)
    await store.remember_posted(p)
    assert await store.find_posted(p.marker) == p
    assert await store.find_posted("nope") is None


async def test_runs_steps_and_usage(store: Any) -> None:
    run = RunRecord(id="r1", thread="o/r#1", repo="o/r", number=1, installation_id=1, workflow="security-fix",
                    state="running", data={"steps": {"assess": "running"}})
    await store.save_run(run)
    assert await store.active_run("o/r#1") == run
    other = RunRecord(**{**_fields(run), "id": "r2", "thread": "o/r2#1", "repo": "o/r2"})
    await store.save_run(other)
    assert await store.active_runs("o/r", 1) == [run] and await store.active_runs("o/r2", 1) == [other]
    # The name's earlier owner (another installation): its runs are not this one's.
    earlier = RunRecord(**{**_fields(run), "id": "r0", "thread": "o/r#2", "number": 2, "installation_id": 9})
    await store.save_run(earlier)
    assert await store.active_runs("o/r", 1) == [run] and await store.active_runs("o/r", 9) == [earlier]
    await store.save_run(RunRecord(**{**_fields(run), "state": "done"}))
    assert await store.active_run("o/r#1") is None and await store.active_runs("o/r", 1) == []
    await store.save_run(RunRecord(**{**_fields(other), "state": "done"}))
    assert (await store.load_run("r1")).state == "done"  # type: ignore[union-attr]
    assert await store.run_states() == {"done": 2, "running": 1}  # the earlier owner's r0 still runs
    step = StepRecord(run_id="r1", step_id="assess", iteration=1, status="done", output={"summary": "ok"},
                      input_tokens=10, output_tokens=5, cache_read_tokens=3)
    await store.save_step(step)
    await store.save_step(step)
    assert await store.steps_of("r1") == [step]
    await store.add_usage(1, "2026-11-25", 100, 0.5)
    await store.add_usage(1, "2026-11-25", 50, 0.25)
    assert await store.usage_on(1, "2026-11-25") == 150
    assert await store.usage_on(1, "2026-11-26") == 0


def _fields(run: RunRecord) -> dict[str, Any]:
    return {f: getattr(run, f) for f in run.__slots__}  # type: ignore[attr-defined]


async def test_a_pull_requests_findings_are_kept_whole_per_pull_request(store: Any) -> None:
    """Issue 17's converging reviews: the findings of one PR and the head they were judged at, replaced whole."""
    assert await store.load_findings("o/r", 7) is None
    first = {"a1": {"state": "open", "rule": "sql-injection"}, "b2": {"state": "open", "rule": "model:critical"}}
    await store.save_findings(PullFindings(repo="o/r", number=7, sha="s1", findings=first))
    await store.save_findings(PullFindings(repo="o/r", number=8, sha="t1", findings={}))
    await store.save_findings(PullFindings(repo="o/r", number=7, sha="s2", findings={"a1": {"state": "fixed"}}))
    assert await store.load_findings("o/r", 7) == PullFindings("o/r", 7, "s2", {"a1": {"state": "fixed"}})
    assert await store.load_findings("o/r", 8) == PullFindings("o/r", 8, "t1", {})
    assert await store.load_findings("o/other", 7) is None


async def test_dashboard_refreshes_put_off_are_kept_and_cleared_only_by_their_own_mark(store: Any) -> None:
    assert await store.mark_due("o/r", 1, 10.0) == 1
    assert await store.mark_due("o/s", 2, 5.0) == 1
    marks = await store.mark_due("o/r", 1, 20.0)  # put off again: one more mark, due from its latest
    assert marks == 2 and await store.due_dashboards() == [("o/s", 2), ("o/r", 1)]
    assert await store.mark_due("o/r", 1, 30.0) == 3  # a change marked while the edit of mark 2 was in flight
    assert not await store.clear_due("o/r", marks)  # that edit clears nothing: the later change stays due
    assert await store.clear_due("o/r", 3) and await store.due_dashboards() == [("o/s", 2)]
    assert await store.clear_due("o/s") and not await store.clear_due("o/s")


async def test_a_posted_record_is_forgotten_only_while_it_holds_the_id_given(store: Any) -> None:
    mark = "<!-- triage-lead:box-done:o/r:abc -->"
    await store.remember_posted(Posted(marker=mark, repo="o/r", kind="seen", github_id=1))
    await store.remember_posted(Posted(marker=mark, repo="o/r", kind="seen", github_id=2))  # a later tick's
    assert not await store.forget_posted(mark, github_id=1)
    assert (await store.find_posted(mark)).github_id == 2
    assert await store.forget_posted(mark, github_id=2) and await store.find_posted(mark) is None
    assert not await store.forget_posted(mark)


async def test_a_dashboard_whose_refresh_keeps_failing_goes_behind_the_others(store: Any) -> None:
    """Each attempt marks its repository due again, at the back: a hundred repositories whose refresh keeps
    failing cannot keep the pass (at most ``limit`` a pass) from the others."""
    await store.mark_due("o/failing", 1, 1.0)
    await store.mark_due("o/fine", 2, 2.0)
    assert await store.due_dashboards(limit=1) == [("o/failing", 1)]
    await store.mark_due("o/failing", 1, 3.0)  # the pass tried it, and it failed again
    assert await store.due_dashboards(limit=1) == [("o/fine", 2)]
