"""PostgreSQL-only store behaviour: migrations under a lock, the one-transaction hand-off to procrastinate, 503s.

The shared store contract runs on PostgreSQL too, through the parametrized fixture in test_store.py.
Every test gets a fresh schema (``fresh_schema``); without a server they skip, saying why.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from bot.run.runtime import Runtime
from bot.settings import Settings
from bot.store import Delivery, StoreUnavailable
from bot.store.migrations import MIGRATIONS
from bot.store.postgres import QUEUE, TASK, PostgresStore, postgres_sql
from tests.conftest import load_fixture, post_webhook

# Tests read this one variable so a laptop with PostgreSQL elsewhere can still run them.
PG_BASE = os.environ.get("TRIAGE_LEAD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _where(conninfo: str) -> str:
    parts = conninfo_to_dict(conninfo)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', '5432')}"


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """An empty schema for one test, dropped after it; yields a DATABASE_URL whose search_path is only that.

    Skips the test when no server answers (e.g. a newcomer's laptop).
    """
    try:
        admin = await psycopg.AsyncConnection.connect(PG_BASE, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        pytest.skip(f"PostgreSQL not reachable at {_where(PG_BASE)}: {reason}")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    async with admin:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            yield f"{PG_BASE}{'&' if '?' in PG_BASE else '?'}options=-csearch_path%3D{schema}"
        finally:
            await admin.execute("SET lock_timeout = '10s'")
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@asynccontextmanager
async def opened_store() -> AsyncIterator[PostgresStore]:
    """A PostgresStore opened on a fresh schema (:func:`fresh_schema`), closed after the test."""
    async with fresh_schema() as url:
        store = PostgresStore(url)
        await store.open()
        try:
            yield store
        finally:
            await store.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_schema() as url:
        yield url


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(pg_url)
    await store.open()
    yield store
    await store.close()


def delivery(i: int | str, thread: str = "o/r#1") -> Delivery:
    return Delivery(id=f"d-{i}", event="issues", action="opened", installation_id=1, repo="o/r", thread=thread,
                    payload={"n": i})


async def queued_jobs(store: PostgresStore) -> list[dict[str, Any]]:
    return await store._all("SELECT id, queue_name, task_name, lock, queueing_lock, args, status"
                            " FROM procrastinate_jobs ORDER BY id")


def test_dialect_translation_touches_only_the_rowid_key() -> None:
    assert postgres_sql("id INTEGER PRIMARY KEY,\n n INTEGER NOT NULL") == "id BIGSERIAL PRIMARY KEY,\n n INTEGER NOT NULL"
    first = MIGRATIONS[1]
    assert isinstance(first, str) and postgres_sql(first) == first


async def test_migrations_are_applied_once_even_by_processes_starting_together(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(5)]
    await asyncio.gather(*(s.open() for s in stores))  # they queue on the advisory lock
    try:
        assert {await s.schema_version() for s in stores} == {len(MIGRATIONS)}
        rows = await stores[0]._all("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == list(range(1, len(MIGRATIONS) + 1))
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    again = PostgresStore(pg_url)
    await again.open()
    assert await again.schema_version() == len(MIGRATIONS)
    await again.close()


async def test_delivery_and_its_procrastinate_job_appear_together(pg: PostgresStore) -> None:
    assert await pg.accept_delivery(delivery(1))
    [job] = await pg.jobs_for("d-1")
    assert job["state"] == "queued"
    assert await queued_jobs(pg) == [{
        "id": 1, "queue_name": QUEUE, "task_name": TASK, "lock": "o/r#1", "queueing_lock": "d-1",
        "args": {"job_id": job["id"], "delivery_id": "d-1"}, "status": "todo"}]


async def test_a_duplicate_delivery_enqueues_nothing(pg: PostgresStore) -> None:
    assert await pg.accept_delivery(delivery(1))
    assert not await pg.accept_delivery(delivery(1))
    assert len(await queued_jobs(pg)) == 1
    assert await pg.job_states() == {"queued": 1}


async def test_ten_concurrent_copies_make_one_procrastinate_job(pg: PostgresStore) -> None:
    taken = await asyncio.gather(*(pg.accept_delivery(delivery("same")) for _ in range(10)))
    assert sorted(taken) == [False] * 9 + [True]
    assert [j["queueing_lock"] for j in await queued_jobs(pg)] == ["d-same"]
    assert await pg.job_states() == {"queued": 1}


async def test_a_failed_enqueue_rolls_the_delivery_back(pg: PostgresStore) -> None:
    await pg._exec("ALTER FUNCTION procrastinate_defer_jobs_v1(procrastinate_job_to_defer_v1[]) RENAME TO hidden")
    with pytest.raises(StoreUnavailable, match="procrastinate_defer_jobs_v1"):  # the webhook's 503, not a 500
        await pg.accept_delivery(delivery(1))
    assert await pg._all("SELECT id FROM deliveries") == []
    assert await pg.job_states() == {}
    await pg._exec("ALTER FUNCTION hidden(procrastinate_job_to_defer_v1[]) RENAME TO procrastinate_defer_jobs_v1")
    assert await pg.accept_delivery(delivery(1))  # GitHub's redelivery is then taken
    assert len(await queued_jobs(pg)) == 1


async def test_unreachable_server_is_store_unavailable() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        await store.open()


async def test_webhook_answers_503_when_the_database_is_gone(pg_url: str, settings: Settings,
                                                           aiohttp_client: Any) -> None:
    runtime = await Runtime(settings.with_overrides(database_url=pg_url)).start()
    try:
        client = await aiohttp_client(runtime.web_app())
        await runtime.store.close()  # every later call fails to get a connection
        resp = await post_webhook(client, "issues", load_fixture("issues.opened.json"))
        assert resp.status == 503
        assert (await client.get("/healthz")).status == 503
    finally:
        await runtime.close()
