"""Group commit on PostgreSQL: deliveries that arrive together are one transaction (deliveries, job rows and
one call of procrastinate's defer), each caller answered on its own; a failure answers all of them 503.

Every test gets a fresh schema (test_postgres_store.fresh_schema); without a server they skip, saying why.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from bot.run.runtime import Runtime
from bot.settings import Settings
from bot.store import Delivery, StoreUnavailable
from bot.store.postgres import QUEUE, TASK, PostgresStore
from tests.conftest import load_fixture, post_webhook
from tests.test_postgres_store import delivery, fresh_schema, pg, queued_jobs  # noqa: F401  (pg: on this pg_url)

HIDE_DEFER = "ALTER FUNCTION procrastinate_defer_jobs_v1(procrastinate_job_to_defer_v1[]) RENAME TO hidden"
SHOW_DEFER = "ALTER FUNCTION hidden(procrastinate_job_to_defer_v1[]) RENAME TO procrastinate_defer_jobs_v1"


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """The schema's URL with an application name of this test's own: its waits are told from other sessions'."""
    async with fresh_schema() as url:
        yield f"{url}&application_name=batch-{uuid.uuid4().hex[:12]}"


def app_name(url: str) -> str:
    return url.rsplit("application_name=", 1)[1]


async def accept_all(store: PostgresStore, ds: list[Delivery]) -> list[Any]:
    """Deliveries handed over in one tick, as a burst arrives: the same batch; answers or exceptions."""
    return await asyncio.gather(*(store.accept_delivery(d) for d in ds), return_exceptions=True)


async def writers(store: PostgresStore, table: str) -> set[str]:
    """The transactions that wrote a table's rows (PostgreSQL's xmin)."""
    return {r["x"] for r in await store._all(f"SELECT DISTINCT xmin::text AS x FROM {table}")}


async def wait_blocked(pg_url: str, n: int) -> None:
    """Until ``n`` of this test's sessions wait for a row lock (another transaction's copy of an id)."""
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        for _ in range(500):
            row = await (await admin.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
                (app_name(pg_url),))).fetchone()
            if row and row[0] >= n:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"{n} sessions never waited for a lock")


async def hold(pg_url: str, *ids: str) -> psycopg.AsyncConnection[Any]:
    """Another process's transaction with these delivery ids inserted and not committed yet."""
    conn = await psycopg.AsyncConnection.connect(pg_url)
    for i in ids:
        await conn.execute("INSERT INTO deliveries (id, event, action, installation_id, repo, thread, received_at,"
                           " payload) VALUES (%s, 'issues', 'opened', 1, 'o/r', 'o/r#1', 0, '{}')", (i,))
    return conn


async def test_deliveries_arriving_together_are_one_transaction(pg: PostgresStore) -> None:
    burst = [delivery(i, thread=f"o/r#{i % 3}") for i in range(10)]
    assert await accept_all(pg, burst) == [True] * 10
    [tx] = await writers(pg, "deliveries")
    assert await writers(pg, "jobs") == await writers(pg, "procrastinate_jobs") == {tx}
    assert await pg.job_states() == {"queued": 10}
    assert await pg.accept_delivery(delivery(10))  # alone, its own transaction
    assert len(await writers(pg, "deliveries")) == 2


async def test_the_procrastinate_jobs_follow_arrival_with_the_thread_as_lock(pg: PostgresStore) -> None:
    burst = [delivery(i, thread="o/r#1" if i % 2 else "o/r#2") for i in (9, 3, 7, 1, 8, 2)]  # not in id order
    assert await accept_all(pg, burst) == [True] * 6
    ours = {r["delivery_id"]: r["id"] for r in await pg._all("SELECT id, delivery_id FROM jobs")}
    assert await queued_jobs(pg) == [
        {"id": n, "queue_name": QUEUE, "task_name": TASK, "lock": d.thread, "queueing_lock": d.id,
         "args": {"job_id": ours[d.id], "delivery_id": d.id}, "status": "todo"}
        for n, d in enumerate(burst, start=1)]
    # Our job rows too: a thread's jobs run oldest first, by id.
    assert sorted(ours, key=ours.__getitem__) == [d.id for d in burst]


async def test_a_duplicate_inside_one_batch_is_seen(pg: PostgresStore) -> None:
    assert await accept_all(pg, [delivery(1), delivery(1), delivery(2), delivery(1)]) == [True, False, True, False]
    assert [j["queueing_lock"] for j in await queued_jobs(pg)] == ["d-1", "d-2"]
    assert await pg.job_states() == {"queued": 2}


async def test_a_redelivery_in_a_later_batch_is_found(pg: PostgresStore) -> None:
    assert await accept_all(pg, [delivery(1), delivery(2)]) == [True, True]
    assert await accept_all(pg, [delivery(3), delivery(1), delivery(4), delivery(2)]) == [True, False, True, False]
    assert [j["queueing_lock"] for j in await queued_jobs(pg)] == ["d-1", "d-2", "d-3", "d-4"]
    assert [j["delivery_id"] for j in await pg.jobs_for("d-1")] == ["d-1"]
    assert not await pg.accept_delivery(delivery(3))


async def test_a_failed_defer_rolls_the_whole_batch_back(pg: PostgresStore) -> None:
    assert await pg.accept_delivery(delivery(0))
    await pg._exec(HIDE_DEFER)
    answers = await accept_all(pg, [delivery(1), delivery(0), delivery(2), delivery(1)])
    assert all(isinstance(a, StoreUnavailable) for a in answers), answers  # the seen one too: nobody hears 2xx
    assert all("procrastinate_defer_jobs_v1" in str(a) and "\n" not in str(a) for a in answers)  # one log line
    assert [r["id"] for r in await pg._all("SELECT id FROM deliveries")] == ["d-0"]
    assert await pg.job_states() == {"queued": 1}
    assert len(await queued_jobs(pg)) == 1
    await pg._exec(SHOW_DEFER)
    assert await accept_all(pg, [delivery(1), delivery(2), delivery(0)]) == [True, True, False]  # GitHub's redelivery


async def test_the_webhook_answers_503_when_the_defer_fails(pg_url: str, settings: Settings,
                                                            aiohttp_client: Any) -> None:
    runtime = await Runtime(settings.with_overrides(database_url=pg_url)).start()
    try:
        client = await aiohttp_client(runtime.web_app())
        await runtime.store._exec(HIDE_DEFER)  # type: ignore[attr-defined]
        resp = await post_webhook(client, "issues", load_fixture("issues.opened.json"), delivery="d-503")
        assert resp.status == 503
        await runtime.store._exec(SHOW_DEFER)  # type: ignore[attr-defined]
        assert await runtime.store.jobs_for("d-503") == []
        assert (await post_webhook(client, "issues", load_fixture("issues.opened.json"), delivery="d-503")).status == 202
    finally:
        await runtime.close()


async def test_a_batch_waits_for_another_process_copy_of_an_id(pg: PostgresStore, pg_url: str) -> None:
    for ends in ("commit", "rollback"):
        other = await hold(pg_url, f"d-{ends}")
        answers = asyncio.ensure_future(accept_all(pg, [delivery(ends), delivery(f"{ends}-2")]))
        await wait_blocked(pg_url, 1)
        assert not answers.done()
        await getattr(other, ends)()
        await other.close()
        # Committed by the other process: seen, nothing enqueued for it; rolled back: ours.
        assert await answers == [ends == "rollback", True]
    assert [j["queueing_lock"] for j in await queued_jobs(pg)] == ["d-commit-2", "d-rollback", "d-rollback-2"]


async def test_two_processes_batches_sharing_ids_never_deadlock(pg_url: str) -> None:
    one, two = PostgresStore(pg_url), PostgresStore(pg_url)
    await one.open()
    await two.open()
    one.hook_budget = two.hook_budget = 10.0  # only the order of the locks is under test here
    other = await hold(pg_url, "d-x", "d-y")  # each batch stops at one of these, holding the ids before it
    try:
        first = asyncio.ensure_future(accept_all(one, [delivery("a"), delivery("x"), delivery("b")]))
        second = asyncio.ensure_future(accept_all(two, [delivery("b"), delivery("y"), delivery("a")]))
        await wait_blocked(pg_url, 2)
        await other.rollback()
        got = await first, await second
        assert all(isinstance(a, bool) for a in got[0] + got[1]), got  # no DeadlockDetected, no 503
        assert {d: got[0][i] or got[1][j] for d, i, j in (("a", 0, 2), ("b", 2, 0))} == {"a": True, "b": True}
        assert sorted(j["queueing_lock"] for j in await queued_jobs(one)) == ["d-a", "d-b", "d-x", "d-y"]
    finally:
        await other.close()
        await one.close()
        await two.close()


async def test_a_lock_held_past_the_budget_is_a_503_and_the_next_batch_goes_on(pg: PostgresStore,
                                                                                pg_url: str) -> None:
    pg.hook_budget = 0.3
    other = await hold(pg_url, "d-stuck")
    try:
        start = time.monotonic()
        [answer] = await asyncio.wait_for(accept_all(pg, [delivery("stuck")]), 3)
        assert isinstance(answer, StoreUnavailable) and "lock" in str(answer)
        assert time.monotonic() - start < 1.0
        assert await pg.accept_delivery(delivery("next"))  # the lock is still held; other ids go through
    finally:
        await other.close()


async def test_waiting_for_a_connection_counts_against_the_budget(pg_url: str) -> None:
    store = PostgresStore(pg_url, max_size=1)  # the pool's own wait is 5 s
    await store.open()
    store.hook_budget = 1.0
    try:
        async with store.pool.connection():  # the only connection, taken by something slow
            start = time.monotonic()
            first = asyncio.ensure_future(store.accept_delivery(delivery(1)))
            await asyncio.sleep(0.1)
            second = asyncio.ensure_future(store.accept_delivery(delivery(2)))  # queued behind the first batch
            with pytest.raises(StoreUnavailable):
                await first
            with pytest.raises(StoreUnavailable):
                await second
            # The second waited for the first batch 0.9 s, then for a connection only what it had left.
            assert time.monotonic() - start < 1.5
        assert await store.accept_delivery(delivery(1))
    finally:
        await store.close()


async def test_batches_back_to_back_take_one_connection_and_give_it_back(pg: PostgresStore) -> None:
    before = pg.pool.get_stats().get("requests_num", 0)
    assert await accept_all(pg, [delivery(i) for i in range(250)]) == [True] * 250  # three batches of 100 at most
    # One checkout (and one check by the pool) for the three: each batch found the next one waiting.
    assert pg.pool.get_stats().get("requests_num", 0) - before == 1
    assert pg._held is None  # the last one found nobody waiting: the connection went back at once
    assert len(await writers(pg, "deliveries")) == 3


async def test_a_kept_connection_goes_back_when_the_next_callers_waited_out_their_budget(pg: PostgresStore) -> None:
    intake, late = pg._intake(), [0.0]
    intake.clock = lambda: time.monotonic() + late[0]
    first = asyncio.ensure_future(pg.accept_delivery(delivery(1)))
    while intake.writer is None or intake.pending:  # the first batch is being written
        await asyncio.sleep(0)
    second = asyncio.ensure_future(pg.accept_delivery(delivery(2)))
    await asyncio.sleep(0)
    late[0] = 10.0  # the second caller has waited out its budget when the first batch ends
    assert await first
    with pytest.raises(StoreUnavailable, match="waited"):
        await second
    await asyncio.sleep(0.05)
    assert pg._held is None
    stats = pg.pool.get_stats()
    assert stats["pool_available"] == stats["pool_size"]


async def test_payloads_are_compressed_with_lz4_where_the_server_can(pg: PostgresStore) -> None:
    row = await pg._one("SELECT 'lz4' = ANY(enumvals) AS lz4 FROM pg_settings WHERE name = 'default_toast_compression'")
    if not row or not row["lz4"]:
        pytest.skip("this PostgreSQL cannot compress with lz4")
    body = Delivery(id="d-big", event="issues", action="opened", installation_id=1, repo="o/r", thread="o/r#1",
                    payload={"body": "a long issue body " * 1000})  # compressible, past the 2 KB TOAST threshold
    assert await pg.accept_delivery(body)
    assert await pg._one("SELECT pg_column_compression(payload) AS c FROM deliveries") == {"c": "lz4"}
    await pg._exec("INSERT INTO repo_configs (repo, source, text, saved_at) VALUES ('o/r', 's', %s, 0)",
                   ("a long config " * 1000,))  # other writes keep the server's default
    assert await pg._one("SELECT pg_column_compression(text) AS c FROM repo_configs") == {"c": "pglz"}
