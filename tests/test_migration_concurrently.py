"""Migration 12 (an index on ``runs``) on PostgreSQL: built ``CONCURRENTLY``, so run writes go on while it builds; an
INVALID index left by a build that died is dropped and built again; a crash after the build and before its record
leaves nothing to trip on; installs that ran 12 as plain SQL are untouched (versions are recorded by number). On
SQLite the same step builds the index in its version's transaction. PostgreSQL tests skip without a server."""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.store import SQLiteStore, StoreUnavailable
from bot.store import postgres_migrate as pm
from bot.store.migrations import MIGRATIONS, Index
from bot.store.postgres import PostgresStore
from tests.test_postgres_store import fresh_schema

TWELVE = next(m for m in MIGRATIONS[11:12] if isinstance(m, Index))  # migration 12
RUN = ("INSERT INTO runs (id, thread, repo, number, installation_id, workflow, state, data, created_at, updated_at)"
       " VALUES (%s, 'o/r#1', 'o/r', 1, 1, 'w', 'running', '{}', 1.0, 1.0)")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_schema() as url:
        yield url


async def at_version_11(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database as an install of before migration 12 left it."""
    with monkeypatch.context() as m:
        m.setattr("bot.store.postgres.MIGRATIONS", MIGRATIONS[:11])
        store = PostgresStore(url)
        await store.open()
        await store.close()


async def index_state(conn: psycopg.AsyncConnection[Any]) -> tuple[bool, bool] | None:
    """(valid, unique) of runs_repo_created; None when there is none."""
    row = await (await conn.execute("SELECT indisvalid, indisunique FROM pg_index"
                                    " WHERE indexrelid = to_regclass('runs_repo_created')")).fetchone()
    return None if row is None else (bool(row[0]), bool(row[1]))


async def versions(conn: psycopg.AsyncConnection[Any]) -> list[int]:
    return [r[0] for r in await (await conn.execute("SELECT version FROM schema_migrations ORDER BY version")).fetchall()]


def test_migration_12_is_the_same_index_as_it_shipped() -> None:
    assert TWELVE.sql() == "CREATE INDEX IF NOT EXISTS runs_repo_created ON runs (repo, installation_id, created_at)"
    assert TWELVE.sql(concurrently=True).startswith("CREATE INDEX CONCURRENTLY IF NOT EXISTS runs_repo_created ON")


async def test_sqlite_builds_it_in_the_version_and_reads_use_it(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        plan = await store._run(lambda db: db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE repo = 'o/r' AND installation_id = 1"
            " ORDER BY created_at DESC").fetchall())
        assert any("runs_repo_created" in str(tuple(r)) for r in plan)
    finally:
        await store.close()


async def test_run_writes_go_on_while_the_index_builds(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer's transaction is open on ``runs`` as the migration starts: a plain CREATE INDEX queues for its lock
    behind it, and every run write after queues behind the build; CONCURRENTLY takes no lock writes wait for."""
    await at_version_11(pg_url, monkeypatch)
    async with await psycopg.AsyncConnection.connect(pg_url) as busy, \
            await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as other:
        await busy.execute(RUN, ("in-flight",))  # uncommitted: the build waits for it to end
        store = PostgresStore(pg_url)
        opening = asyncio.create_task(store.open())
        try:
            for _ in range(100):  # until the build has started (and is waiting)
                if await index_state(other) is not None or opening.done():
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # a plain build would hold its lock request by now
            await other.execute("SET lock_timeout = '2s'")
            await other.execute(RUN, ("meanwhile",))  # would fail with a lock timeout behind a plain build
            await busy.commit()
            await asyncio.wait_for(opening, 30)
            assert await index_state(other) == (True, False)
            assert await versions(other) == list(range(1, len(MIGRATIONS) + 1))
        finally:
            if not opening.done():
                opening.cancel()
            await store.close()


async def test_an_invalid_index_left_by_a_dead_build_is_built_again(pg_url: str, monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    await at_version_11(pg_url, monkeypatch)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        for i in range(2):  # twice the same key: a unique build fails half-way, as a crashed build leaves it
            await conn.execute(RUN, (f"r{i}",))
        with pytest.raises(psycopg.errors.UniqueViolation):
            await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY runs_repo_created ON runs (repo, installation_id,"
                               " created_at)")
        assert await index_state(conn) == (False, True)  # left behind, INVALID; IF NOT EXISTS would take it as built
        store = PostgresStore(pg_url)
        with caplog.at_level(logging.WARNING):
            await store.open()
        await store.close()
        assert await index_state(conn) == (True, False)
        assert await versions(conn) == list(range(1, len(MIGRATIONS) + 1))
    assert "runs_repo_created was left invalid" in caplog.text


async def test_a_crash_after_the_build_before_its_record_is_recorded_next_start(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    await at_version_11(pg_url, monkeypatch)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute(TWELVE.sql(concurrently=True))  # built; the process died before recording 12
        store = PostgresStore(pg_url)
        await store.open()
        await store.close()
        assert await index_state(conn) == (True, False)
        assert await versions(conn) == list(range(1, len(MIGRATIONS) + 1))


async def test_an_install_that_ran_12_as_plain_sql_keeps_its_index_and_records(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = [*MIGRATIONS[:11], "CREATE INDEX runs_repo_created ON runs (repo, installation_id, created_at);"]
    with monkeypatch.context() as m:
        m.setattr("bot.store.postgres.MIGRATIONS", shipped)
        store = PostgresStore(pg_url)
        await store.open()
        await store.close()
    store = PostgresStore(pg_url)
    await store.open()  # 12 is recorded by number: skipped; 13 on applied
    await store.close()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        assert await index_state(conn) == (True, False)
        assert await versions(conn) == list(range(1, len(MIGRATIONS) + 1))


async def test_a_wait_for_the_lock_or_the_build_says_what_it_waits_for(
        pg_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """CREATE INDEX CONCURRENTLY waits for every older transaction (a pg_dump, a session idle in one), and the
    processes starting beside it wait for the lock meanwhile: each says so every WAIT_LOG seconds, naming the
    sessions by pid and state, never waiting in silence."""
    await at_version_11(pg_url, monkeypatch)
    monkeypatch.setattr(pm, "WAIT_LOG", 0.3)
    async with await psycopg.AsyncConnection.connect(pg_url) as busy:
        await busy.execute(RUN, ("in-flight",))  # idle in transaction: the build waits for it
        pid = busy.info.backend_pid
        first, second = PostgresStore(pg_url), PostgresStore(pg_url)
        with caplog.at_level(logging.WARNING):
            opening = asyncio.create_task(first.open())
            await asyncio.sleep(0.2)
            waiting = asyncio.create_task(second.open())  # waits for the lock the first holds
            try:
                await asyncio.sleep(1.5)
                assert not opening.done() and not waiting.done()
                await busy.commit()
                await asyncio.wait_for(asyncio.gather(opening, waiting), 30)
            finally:
                for task in (opening, waiting):
                    task.cancel()
                await first.close()
                await second.close()
    assert re.search(rf"building index runs_repo_created \(CONCURRENTLY\) for \d+ s, waiting for pid {pid} \(idle in"
                     r" transaction, no application_name, in a transaction for \d+ s\)", caplog.text)
    assert re.search(r"waited \d+ s for the migration lock, held by pid \d+ \(active", caplog.text)


async def test_a_connection_lost_while_migrating_reports_why_not_the_unlock(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unlock in the ``finally`` of a broken connection fails too; its error must not hide the cause."""
    broken = [*MIGRATIONS[:11], "SELECT pg_terminate_backend(pg_backend_pid())"]
    monkeypatch.setattr("bot.store.postgres.MIGRATIONS", broken)
    with pytest.raises(StoreUnavailable, match="terminating connection"):
        await PostgresStore(pg_url).open()
