"""PostgreSQL's schema migrations (bot/store/migrations.py's list), run by :class:`bot.store.postgres.PostgresStore`
as it opens: under a session advisory lock taken by polling, each version in its own transaction with its record,
except an :class:`~bot.store.migrations.Index`, built ``CONCURRENTLY`` outside any and recorded after.

A build ``CONCURRENTLY`` waits for every transaction older than it to end (a ``pg_dump``, a session left idle in a
transaction), and the processes starting beside it wait for the lock meanwhile: however long that is, each logs a
WARNING every WAIT_LOG seconds naming what it waits for (the sessions, by pid and state), never waiting in silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg

from bot.store.migrations import Index, RowMigration, RowPass

log = logging.getLogger(__name__)

T = TypeVar("T")
Connect = Callable[[], Awaitable[psycopg.AsyncConnection[Any]]]

MIGRATE_LOCK = 0x7472_6961_6765_01  # "triage" + 1: schema changes, one process at a time
MIGRATE_POLL = 0.2  # seconds between tries of the migration lock
WAIT_LOG = 10.0  # seconds between the WARNINGs of a wait for the lock or a build

# Procrastinate only wakes idle workers (LISTEN/NOTIFY) when a job is inserted. A job held back by its
# thread's lock would then wait for the next poll after its predecessor finished; this trigger sends
# the same wake-up when a job leaves "doing" (finished, failed, or put back by a retry).
WAKE_ON_RELEASE = """
CREATE FUNCTION triage_lead_wake_workers() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload TEXT := json_build_object('type', 'job_inserted', 'job_id', NEW.id)::text;
BEGIN
    PERFORM pg_notify('procrastinate_queue_v1#' || NEW.queue_name, payload);
    PERFORM pg_notify('procrastinate_any_queue_v1', payload);
    RETURN NEW;
END;
$$;
CREATE TRIGGER triage_lead_wake_workers AFTER UPDATE OF status ON procrastinate_jobs
    FOR EACH ROW WHEN (OLD.status = 'doing' AND NEW.status <> 'doing')
    EXECUTE PROCEDURE triage_lead_wake_workers();
"""

_SESSION = ("a.pid, a.state, a.application_name, round(extract(epoch FROM now() - a.xact_start)) AS xact_s"
            " FROM pg_stat_activity a")
# The session holding the migration lock (a bigint key is classid: its high 32 bits, objid: its low ones).
_HOLDER = (f"SELECT {_SESSION} JOIN pg_locks l ON l.pid = a.pid WHERE l.locktype = 'advisory' AND l.granted"
           " AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1")
# The sessions a build waits for: those of transactions older than it (their virtual xid locks), or a lock.
_BLOCKERS = f"SELECT {_SESSION} WHERE a.pid = ANY(pg_blocking_pids(%s))"


def postgres_sql(sql: str) -> str:
    """A migration from the shared list in PostgreSQL's dialect: SQLite's rowid key becomes a sequence."""
    return re.sub(r"\bINTEGER PRIMARY KEY\b", "BIGSERIAL PRIMARY KEY", sql)


def _sessions(rows: Sequence[Sequence[Any]]) -> str:
    """Sessions as an operator finds them in pg_stat_activity (the query text left out: it may hold data)."""
    return "; ".join(f"pid {pid} ({state or 'state not readable'}, {app or 'no application_name'}"
                     + (f", in a transaction for {int(xact)} s" if xact is not None else "") + ")"
                     for pid, state, app, xact in rows)


async def _rewrite_rows(conn: psycopg.AsyncConnection[Any], step: RowMigration) -> None:
    """A Python migration step, page by page, inside the caller's transaction."""
    last, tally = "", RowPass(step)
    while rows := await (await conn.execute(step.page_sql("%s"), (last,))).fetchall():
        for key, value in rows:
            new = tally.convert(key, value)
            if new is not None:
                await conn.execute(step.update_sql("%s"), (new, key))
        last = rows[-1][0]
    tally.finish()


async def _lock(conn: psycopg.AsyncConnection[Any]) -> None:
    """The migration lock, for the session, taken by polling. A process waiting for it inside a statement would hold
    a snapshot all along, and ``CREATE INDEX CONCURRENTLY`` waits for every older snapshot to end: the builder
    would wait for the waiter, who waits for the builder (a deadlock PostgreSQL breaks by failing one of them)."""
    started = next_log = time.monotonic()
    next_log += WAIT_LOG
    while True:
        row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATE_LOCK,))).fetchone()
        if row is not None and row[0]:
            return
        if time.monotonic() >= next_log:
            next_log += WAIT_LOG
            rows = await (await conn.execute(_HOLDER, (MIGRATE_LOCK >> 32, MIGRATE_LOCK & 0xFFFF_FFFF))).fetchall()
            log.warning("migrations: waited %.0f s for the migration lock, held by %s", time.monotonic() - started,
                        _sessions(rows) or "a session pg_stat_activity does not show")
        await asyncio.sleep(MIGRATE_POLL)


async def _blocking(connect: Connect | None, pid: int) -> str:
    """What session ``pid``'s statement waits for, read on a connection of its own (``pid``'s is busy)."""
    if connect is None:
        return "sessions not readable here (no second connection)"
    try:
        async with await connect() as other:
            rows = await (await other.execute(_BLOCKERS, (pid,))).fetchall()
    except psycopg.Error as exc:
        return f"sessions not readable ({type(exc).__name__})"
    return _sessions(rows) or "no other session (it is reading the table)"


async def _watched(work: Awaitable[T], what: str, why: Callable[[], Awaitable[str]]) -> T:
    """``work``'s result, with a WARNING every WAIT_LOG seconds it takes saying what it waits for."""
    task, started = asyncio.ensure_future(work), time.monotonic()
    try:
        while not (await asyncio.wait({task}, timeout=WAIT_LOG))[0]:
            log.warning("migrations: %s for %.0f s, waiting for %s", what, time.monotonic() - started, await why())
        return task.result()
    finally:
        if not task.done():  # cancelled while waiting: the statement goes with it
            task.cancel()


async def _build_index(conn: psycopg.AsyncConnection[Any], step: Index, connect: Connect | None) -> None:
    """``step`` built without blocking writes (outside any transaction). A concurrent build that died (a crash, a
    cancel, a deadlock) leaves an INVALID index that IF NOT EXISTS would take as built: dropped and built again."""
    row = await (await conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                                    (step.name,))).fetchone()
    pid = conn.info.backend_pid
    if row is not None and not row[0]:
        log.warning("index %s was left invalid by a build that did not finish: building it again", step.name)
        await _watched(conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {step.name}"),
                       f"dropping the invalid index {step.name}", lambda: _blocking(connect, pid))
    await _watched(conn.execute(step.sql(concurrently=True)), f"building index {step.name} (CONCURRENTLY)",
                   lambda: _blocking(connect, pid))


async def _apply(conn: psycopg.AsyncConnection[Any], migrations: Sequence[str | RowMigration | Index],
                 connect: Connect | None) -> None:
    """Each version not yet recorded, in its own transaction with its record (an Index built before it)."""
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations"
                       " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
    done = {row[0] for row in await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()}
    for version, step in enumerate(migrations, start=1):
        if version in done:
            continue
        if isinstance(step, Index):  # a crash after the build: IF NOT EXISTS finds it valid, and records it
            await _build_index(conn, step, connect)
        async with conn.transaction():
            if isinstance(step, RowMigration):
                await _rewrite_rows(conn, step)
            elif isinstance(step, str):
                await conn.execute(postgres_sql(step))  # no parameters: several statements in one call
            await conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, time.time()))


async def _queue_schema(conn: psycopg.AsyncConnection[Any]) -> None:
    """Procrastinate's schema where it is missing, and the wake-up trigger on it."""
    from procrastinate.schema import SchemaManager  # only the PostgreSQL path needs procrastinate

    async with conn.transaction():
        row = await (await conn.execute("SELECT to_regclass('procrastinate_jobs')")).fetchone()
        if row is None or row[0] is None:
            await conn.execute(SchemaManager.get_schema())
        row = await (await conn.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = 'triage_lead_wake_workers'"
            " AND tgrelid = 'procrastinate_jobs'::regclass")).fetchone()
        if row is None:
            await conn.execute(WAKE_ON_RELEASE)


async def migrate(conn: psycopg.AsyncConnection[Any], migrations: Sequence[str | RowMigration | Index],
                  connect: Connect | None = None) -> None:
    """Apply what is missing while holding the migration lock. Processes starting together take turns on the lock;
    each then sees what the first one applied. ``connect``: a second connection, to read what a build waits for."""
    await conn.set_autocommit(True)  # a transaction only where one is opened: CONCURRENTLY needs none around it
    await _lock(conn)
    try:
        await _apply(conn, migrations, connect)
        await _queue_schema(conn)
    finally:
        with contextlib.suppress(psycopg.Error):  # a broken connection lets the lock go as it closes
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATE_LOCK,))
