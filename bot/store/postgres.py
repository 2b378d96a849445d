"""The PostgreSQL store: psycopg 3 async pool, the same migrations as SQLite, procrastinate's queue beside them.

Several processes (``serve`` and any number of ``worker``) share one database, so the schema is
migrated under an advisory lock, and a delivery, our job row and its procrastinate job are written in
one transaction: after the webhook's 2xx nothing can be lost, and a rollback enqueues nothing.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from bot.store.base import FINAL_STATES, Delivery, Job, JobInfo, Posted, RunRecord, StepRecord, StoreUnavailable, job_info
from bot.store.limits import Cap, Limit, fits, window_wait
from bot.store.migrations import MIGRATIONS

# The procrastinate queue and task every delivery's job goes to; bot/run/procrastinate.py registers the task.
QUEUE = "triage-lead"
TASK = "triage-lead.process-job"

# Advisory-lock keys (any constant bigint; they only need to differ from each other).
_MIGRATE_LOCK = 0x7472_6961_6765_01  # "triage" + 1: schema changes, one process at a time
_STALLED_LOCK = 0x7472_6961_6765_02  # one worker at a time re-queues the jobs of dead workers
_LIMIT_LOCKS = 0x7472_6961  # the first key of the two-key advisory locks taken per limit key (hashtext is the second)

# Connection trouble (server down, network, pool exhausted or closed) is what the webhook answers 503 for.
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, PoolClosed)
# (A full disk, DiskFull, and a statement timeout, QueryCanceled, are OperationalErrors too.)

PRUNE_BATCH = 1000  # rows per retention transaction: short ones, never a long lock on deliveries


def _why(exc: BaseException) -> str:
    """psycopg's message on one line (libpq adds hints on further lines); never holds the password."""
    return " ".join(str(exc).split()) or type(exc).__name__


def postgres_sql(sql: str) -> str:
    """A migration from the shared list in PostgreSQL's dialect: SQLite's rowid key becomes a sequence."""
    return re.sub(r"\bINTEGER PRIMARY KEY\b", "BIGSERIAL PRIMARY KEY", sql)


# Enqueue through procrastinate's own function, so the insert is exactly what ``defer_async`` would do,
# but inside our transaction. ``lock`` = thread: procrastinate runs one job per lock at a time, oldest
# first. ``queueing_lock`` = delivery id: a second "todo" job for the same delivery is refused.
_DEFER = """
SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(
    %(queue)s, %(task)s, 0, %(lock)s, %(queueing_lock)s, %(args)s, NULL
)::procrastinate_job_to_defer_v1])) AS id
"""

# Procrastinate only wakes idle workers (LISTEN/NOTIFY) when a job is inserted. A job held back by its
# thread's lock would then wait for the next poll after its predecessor finished; this trigger sends
# the same wake-up when a job leaves "doing" (finished, failed, or put back by a retry).
_WAKE_ON_RELEASE = """
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


class PostgresStore:
    """The :class:`~bot.store.base.Store` on PostgreSQL; ``pool`` is shared with procrastinate in workers."""

    def __init__(self, database_url: str, *, max_size: int = 10, timeout: float = 5.0,
                 connect_timeout: float = 5.0) -> None:
        self.url = database_url
        self.connect_timeout = connect_timeout
        # timeout: how long a caller waits for a free connection; a webhook must answer well within
        # GitHub's 10 s. check: a connection the server dropped (restart, failover) is replaced.
        self.pool = AsyncConnectionPool(database_url, min_size=1, max_size=max_size, timeout=timeout,
                                        open=False, check=AsyncConnectionPool.check_connection,
                                        kwargs={"row_factory": dict_row, "connect_timeout": int(connect_timeout)},
                                        name="triage-lead")

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        try:
            async with self.pool.connection() as conn:
                async with conn.transaction():
                    yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(_why(exc)) from exc

    async def _all(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        async with self._tx() as conn:
            return await (await conn.execute(sql, params)).fetchall()

    async def _one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        async with self._tx() as conn:
            return await (await conn.execute(sql, params)).fetchone()

    async def _exec(self, sql: str, params: Any = None) -> None:
        async with self._tx() as conn:
            await conn.execute(sql, params)

    # ---- lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        try:
            conn = await psycopg.AsyncConnection.connect(self.url, connect_timeout=int(self.connect_timeout))
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {_why(exc)}") from exc
        try:
            async with conn:
                await self._migrate(conn)
            await self.pool.open(wait=True, timeout=self.connect_timeout * 2)
        except _UNAVAILABLE as exc:
            await self.pool.close()
            raise StoreUnavailable(f"cannot open the PostgreSQL store: {_why(exc)}") from exc

    @staticmethod
    async def _migrate(conn: psycopg.AsyncConnection[Any]) -> None:
        """Apply what is missing, in one transaction, while holding an advisory lock.

        Processes starting together queue on the lock; each then sees what the first one applied.
        """
        from procrastinate.schema import SchemaManager  # only the PostgreSQL path needs procrastinate

        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations"
                               " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)")
            done = {row[0] for row in await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()}
            for version, sql in enumerate(MIGRATIONS, start=1):
                if version not in done:
                    await conn.execute(postgres_sql(sql))  # no parameters: several statements in one call
                    await conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, time.time()))
            row = await (await conn.execute("SELECT to_regclass('procrastinate_jobs')")).fetchone()
            if row is None or row[0] is None:
                await conn.execute(SchemaManager.get_schema())
            row = await (await conn.execute(
                "SELECT 1 FROM pg_trigger WHERE tgname = 'triage_lead_wake_workers'"
                " AND tgrelid = 'procrastinate_jobs'::regclass")).fetchone()
            if row is None:
                await conn.execute(_WAKE_ON_RELEASE)

    async def close(self) -> None:
        await self.pool.close()

    async def schema_version(self) -> int:
        row = await self._one("SELECT MAX(version) AS v FROM schema_migrations")
        return int(row["v"] or 0) if row else 0

    # ---- deliveries and jobs -------------------------------------------------------------
    async def accept_delivery(self, d: Delivery) -> bool:
        """Record a delivery, our job row and its procrastinate job in one transaction; False if already seen.

        Concurrent copies of one delivery id serialise on the primary key: the others wait for the
        first to commit, then insert nothing and enqueue nothing.
        """
        now = time.time()
        async with self._tx() as conn:
            cur = await conn.execute(
                "INSERT INTO deliveries (id, event, action, installation_id, repo, thread, received_at, payload)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (d.id, d.event, d.action, d.installation_id, d.repo, d.thread, now, json.dumps(d.payload)))
            if cur.rowcount == 0:
                return False
            job = await (await conn.execute(
                "INSERT INTO jobs (delivery_id, thread, state, created_at, updated_at)"
                " VALUES (%s, %s, 'queued', %s, %s) RETURNING id", (d.id, d.thread, now, now))).fetchone()
            if job is None:
                raise StoreUnavailable(f"the job row of delivery {d.id} was not returned")
            await conn.execute(_DEFER, {"queue": QUEUE, "task": TASK, "lock": d.thread, "queueing_lock": d.id,
                                        "args": Jsonb({"job_id": job["id"], "delivery_id": d.id})})
            return True

    @staticmethod
    def _job(row: dict[str, Any]) -> Job:
        return Job(id=row["id"], delivery_id=row["delivery_id"], thread=row["thread"], event=row["event"],
                   payload=json.loads(row["payload"]), attempts=row["attempts"])

    async def claim_job(self, thread: str) -> Job | None:
        """Take the oldest queued job of a thread, unless one of that thread is already running."""
        async with self._tx() as conn:
            # Claims of one thread queue on this lock, so "busy?" and "take it" cannot interleave.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", ("thread:" + thread,))
            busy = await (await conn.execute(
                "SELECT 1 FROM jobs WHERE thread = %s AND state = 'running' LIMIT 1", (thread,))).fetchone()
            if busy:
                return None
            # The thread's oldest queued job, unless it waits for its retry (later ones wait behind it).
            row = await (await conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = %s WHERE id = ("
                " SELECT id FROM jobs WHERE thread = %s AND state = 'queued' ORDER BY id LIMIT 1)"
                " AND run_after <= %s RETURNING id, delivery_id, thread, attempts",
                (time.time(), thread, time.time()))).fetchone()
            if row is None:
                return None
            return await self._with_delivery(conn, row)

    async def _with_delivery(self, conn: psycopg.AsyncConnection[Any], row: dict[str, Any]) -> Job:
        d = await (await conn.execute("SELECT event, payload FROM deliveries WHERE id = %s",
                                      (row["delivery_id"],))).fetchone()
        if d is None:
            raise RuntimeError(f"job {row['id']} has no delivery row {row['delivery_id']!r}")
        return self._job({**row, **d})

    async def begin_job(self, job_id: int) -> Job | None:
        """Mark a job running for the procrastinate task that was handed it; None if it already finished.

        Procrastinate's lock already keeps one job per thread running, so there is no "busy?" check.
        A job found done or failed was finished by a worker that died before procrastinate heard of it.
        """
        async with self._tx() as conn:
            row = await (await conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = %s"
                " WHERE id = %s AND state IN ('queued', 'running') RETURNING id, delivery_id, thread, attempts",
                (time.time(), job_id))).fetchone()
            return None if row is None else await self._with_delivery(conn, row)

    async def finish_job(self, job_id: int, *, error: str | None = None) -> None:
        await self._exec("UPDATE jobs SET state = %s, error = %s, updated_at = %s WHERE id = %s",
                         ("failed" if error else "done", error, time.time(), job_id))

    async def requeue_job(self, job_id: int) -> None:
        """A running job was interrupted (worker shutting down): it is queued again."""
        await self._exec("UPDATE jobs SET state = 'queued', updated_at = %s WHERE id = %s AND state = 'running'",
                         (time.time(), job_id))

    async def retry_job(self, job_id: int, *, after: float, error: str) -> None:
        """A failed job goes back to the queue, to be taken again ``after`` seconds from now. Its thread is told
        again of the wait (noted_at cleared): the note then says why it waits and until when."""
        await self._exec("UPDATE jobs SET state = 'queued', error = %s, run_after = %s, updated_at = %s,"
            " noted_at = NULL WHERE id = %s",
                         (error, time.time() + after, time.time(), job_id))

    async def recover(self) -> list[str]:
        """At start-up of an in-process runner: running jobs go back to the queue; threads with work.

        Workers do not call this (other workers' jobs are running): see :meth:`requeue_stalled`.
        """
        async with self._tx() as conn:
            await conn.execute("UPDATE jobs SET state = 'queued', updated_at = %s WHERE state = 'running'",
                               (time.time(),))
            rows = await (await conn.execute(
                "SELECT thread FROM jobs WHERE state = 'queued' GROUP BY thread ORDER BY MIN(id)")).fetchall()
            return [r["thread"] for r in rows]

    async def requeue_stalled(self, seconds_since_heartbeat: float) -> list[int]:
        """Put the jobs of workers silent for ``seconds_since_heartbeat`` back in the queue; their job ids.

        Uses procrastinate's own queries (stalled workers, stalled jobs, retry) in one transaction, with
        our job rows set back to queued in the same one. The advisory lock makes one worker do it at a
        time, so a job another checker just re-queued (and a live worker took) is never re-queued again.
        """
        from procrastinate.sql import queries

        async with self._tx() as conn:
            got = await (await conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS got", (_STALLED_LOCK,))).fetchone()
            if not got or not got["got"]:
                return []
            await conn.execute(queries["prune_stalled_workers"], {"seconds_since_heartbeat": seconds_since_heartbeat})
            stalled = await (await conn.execute(queries["select_stalled_jobs_by_heartbeat"], {
                "queue": QUEUE, "task_name": TASK, "seconds_since_heartbeat": seconds_since_heartbeat})).fetchall()
            ours: list[int] = []
            for job in stalled:
                await conn.execute(queries["retry_job"], {"job_id": job["id"], "retry_at": None, "new_priority": None,
                                                          "new_queue_name": None, "new_lock": None})
                job_id = (job["args"] or {}).get("job_id")
                if job_id is not None:
                    await conn.execute("UPDATE jobs SET state = 'queued', updated_at = %s"
                                       " WHERE id = %s AND state = 'running'", (time.time(), job_id))
                    ours.append(int(job_id))
            return ours

    async def job_states(self) -> dict[str, int]:
        return {r["state"]: int(r["n"]) for r in await self._all("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")}

    async def jobs_for(self, delivery_id: str) -> list[dict[str, Any]]:
        return await self._all("SELECT * FROM jobs WHERE delivery_id = %s", (delivery_id,))

    # ---- what the bot posted ---------------------------------------------------------------
    async def remember_posted(self, p: Posted) -> None:
        await self._exec(
            "INSERT INTO posted (marker, repo, kind, github_id, number, url, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (marker) DO UPDATE SET github_id = excluded.github_id, url = excluded.url",
            (p.marker, p.repo, p.kind, p.github_id, p.number, p.url, time.time()))

    async def find_posted(self, marker: str) -> Posted | None:
        row = await self._one("SELECT * FROM posted WHERE marker = %s", (marker,))
        if row is None:
            return None
        return Posted(marker=row["marker"], repo=row["repo"], kind=row["kind"], github_id=row["github_id"],
                      number=row["number"], url=row["url"])

    # ---- workflow runs, steps, usage -----------------------------------------------------------
    async def save_run(self, run: RunRecord) -> None:
        now = time.time()
        await self._exec(
            "INSERT INTO runs (id, thread, repo, number, installation_id, workflow, state, data, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
            " workflow = excluded.workflow, state = excluded.state, data = excluded.data,"
            " updated_at = excluded.updated_at",
            (run.id, run.thread, run.repo, run.number, run.installation_id, run.workflow, run.state,
             json.dumps(run.data), now, now))

    async def load_run(self, run_id: str) -> RunRecord | None:
        return RunRecord.from_row(await self._one("SELECT * FROM runs WHERE id = %s", (run_id,)))

    async def active_run(self, thread: str) -> RunRecord | None:
        return RunRecord.from_row(await self._one(
            "SELECT * FROM runs WHERE thread = %s AND NOT (state = ANY(%s)) ORDER BY created_at DESC LIMIT 1",
            (thread, sorted(FINAL_STATES))))

    async def run_states(self) -> dict[str, int]:
        return {r["state"]: int(r["n"]) for r in await self._all("SELECT state, COUNT(*) AS n FROM runs GROUP BY state")}

    async def save_step(self, step: StepRecord) -> None:
        await self._exec(
            "INSERT INTO steps (run_id, step_id, iteration, status, output, input_tokens, output_tokens,"
            " cache_read_tokens, cache_write_tokens, cost_usd, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (run_id, step_id, iteration) DO UPDATE SET status = excluded.status,"
            " output = excluded.output, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,"
            " cache_read_tokens = excluded.cache_read_tokens, cache_write_tokens = excluded.cache_write_tokens,"
            " cost_usd = excluded.cost_usd, updated_at = excluded.updated_at",
            (step.run_id, step.step_id, step.iteration, step.status,
             None if step.output is None else json.dumps(step.output), step.input_tokens, step.output_tokens,
             step.cache_read_tokens, step.cache_write_tokens, step.cost_usd, time.time()))

    async def steps_of(self, run_id: str) -> list[StepRecord]:
        rows = await self._all("SELECT * FROM steps WHERE run_id = %s ORDER BY updated_at, step_id, iteration",
                               (run_id,))
        return [StepRecord.from_row(r) for r in rows]

    async def add_usage(self, installation_id: int, day: str, tokens: int, cost_usd: float) -> None:
        await self._exec(
            "INSERT INTO usage_daily (installation_id, day, tokens, cost_usd) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (installation_id, day) DO UPDATE SET tokens = usage_daily.tokens + excluded.tokens,"
            " cost_usd = usage_daily.cost_usd + excluded.cost_usd", (installation_id, day, tokens, cost_usd))

    async def usage_on(self, installation_id: int, day: str) -> int:
        row = await self._one("SELECT tokens FROM usage_daily WHERE installation_id = %s AND day = %s",
                              (installation_id, day))
        return int(row["tokens"]) if row else 0

    # ---- shared limits (bot/store/limits.py) ---------------------------------------------------------
    @staticmethod
    async def _lock_keys(conn: psycopg.AsyncConnection[Any], keys: Sequence[str]) -> None:
        """Serialise every worker's take on these keys until the transaction ends; sorted, so two takes on
        overlapping keys lock in the same order and never deadlock."""
        for key in sorted(set(keys)):
            await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LIMIT_LOCKS, key))

    async def take_slots(self, limits: Sequence[Limit], now: float | None = None) -> float:
        at = time.time() if now is None else now
        async with self._tx() as conn:
            await self._lock_keys(conn, [k for k, _, _ in limits])
            recent: dict[str, list[float]] = {}
            for key, _, window in limits:
                await conn.execute("DELETE FROM limit_events WHERE key = %s AND at <= %s", (key, at - window))
                rows = await (await conn.execute("SELECT at FROM limit_events WHERE key = %s ORDER BY at",
                                                 (key,))).fetchall()
                recent[key] = [r["at"] for r in rows]
            wait = window_wait(limits, recent, at)
            if wait == 0.0:
                async with conn.cursor() as cur:
                    await cur.executemany("INSERT INTO limit_events (key, at) VALUES (%s, %s)",
                                          [(k, at) for k, _, _ in limits])
            return wait

    async def reserve(self, reservation: str, amount: int, caps: Sequence[Cap], now: float | None = None) -> bool:
        at = time.time() if now is None else now
        async with self._tx() as conn:
            await self._lock_keys(conn, [k for k, _ in caps])
            rows = await (await conn.execute("SELECT key, total FROM spend_totals WHERE key = ANY(%s)",
                                             ([k for k, _ in caps],))).fetchall()
            if not fits(caps, {r["key"]: int(r["total"]) for r in rows}, amount):
                return False
            for key, _ in caps:
                await conn.execute("INSERT INTO spend_totals (key, total) VALUES (%s, %s) ON CONFLICT (key)"
                                   " DO UPDATE SET total = spend_totals.total + excluded.total", (key, amount))
                await conn.execute("INSERT INTO spend_reservations (reservation, key, amount, at)"
                                   " VALUES (%s, %s, %s, %s)", (reservation, key, amount, at))
            return True

    async def settle(self, reservation: str, actual: int) -> None:
        async with self._tx() as conn:
            rows = await (await conn.execute("SELECT key, amount FROM spend_reservations WHERE reservation = %s"
                                             " AND settled = 0 ORDER BY key FOR UPDATE", (reservation,))).fetchall()
            await self._lock_keys(conn, [r["key"] for r in rows])
            for r in rows:
                await conn.execute("UPDATE spend_totals SET total = total + %s WHERE key = %s",
                                   (actual - int(r["amount"]), r["key"]))
            await conn.execute("UPDATE spend_reservations SET amount = %s, settled = 1 WHERE reservation = %s"
                               " AND settled = 0", (actual, reservation))

    async def spent(self, key: str) -> int:
        row = await self._one("SELECT total FROM spend_totals WHERE key = %s", (key,))
        return int(row["total"]) if row else 0

    async def save_config(self, repo: str, source: str, text: str) -> None:
        """A repository's config that parsed: what applies if a later one cannot be read."""
        await self._exec(
            "INSERT INTO repo_configs (repo, source, text, saved_at) VALUES (%s, %s, %s, %s) ON CONFLICT (repo)"
            " DO UPDATE SET source = excluded.source, text = excluded.text, saved_at = excluded.saved_at",
            (repo, source, text, time.time()))

    async def last_config(self, repo: str) -> tuple[str, str] | None:
        row = await self._one("SELECT source, text FROM repo_configs WHERE repo = %s", (repo,))
        return (row["source"], row["text"]) if row else None

    # ---- jobs as people see them: the acknowledger, /retry, `python -m bot jobs` ------------------
    _INFO = ("SELECT j.id, j.delivery_id, j.thread, j.attempts, j.state, j.error, j.run_after, j.created_at,"
             " d.event, d.payload FROM jobs j JOIN deliveries d ON d.id = j.delivery_id")

    async def unnoted_jobs(self, older_than: float, limit: int = 50) -> list[JobInfo]:
        """Jobs queued or running for ``older_than`` seconds whose thread was not told of them yet."""
        rows = await self._all(
            self._INFO + " WHERE j.state IN ('queued', 'running') AND j.noted_at IS NULL AND j.created_at <= %s"
            " ORDER BY j.id LIMIT %s", (time.time() - older_than, limit))
        return [job_info(r) for r in rows]

    async def mark_noted(self, job_id: int) -> bool:
        """Claim the telling of a job's thread; False if another process told it already."""
        row = await self._one("UPDATE jobs SET noted_at = %s WHERE id = %s AND noted_at IS NULL RETURNING id",
                              (time.time(), job_id))
        return row is not None

    async def job_info(self, job_id: int) -> JobInfo | None:
        row = await self._one(self._INFO + " WHERE j.id = %s", (job_id,))
        return job_info(row) if row else None

    async def failed_jobs(self, thread: str | None = None, limit: int = 100) -> list[JobInfo]:
        """Failed jobs, newest first (of one thread, if given)."""
        if thread:
            rows = await self._all(self._INFO + " WHERE j.state = 'failed' AND j.thread = %s ORDER BY j.id DESC LIMIT %s",
                                   (thread, limit))
        else:
            rows = await self._all(self._INFO + " WHERE j.state = 'failed' ORDER BY j.id DESC LIMIT %s", (limit,))
        return [job_info(r) for r in rows]

    async def requeue_failed(self, job_id: int) -> bool:
        """A failed job goes back to the queue (a new procrastinate job, in the same transaction) with its
        attempts reset; False if it was not failed."""
        async with self._tx() as conn:
            row = await (await conn.execute(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_after = 0, updated_at = %s"
                " WHERE id = %s AND state = 'failed' RETURNING id, delivery_id, thread", (time.time(), job_id))).fetchone()
            if row is None:
                return False
            waiting = await (await conn.execute(  # its procrastinate job may still be waiting: one is enough
                "SELECT 1 FROM procrastinate_jobs WHERE queueing_lock = %s AND status = 'todo'",
                (row["delivery_id"],))).fetchone()
            if waiting:
                return True
            await conn.execute(_DEFER, {"queue": QUEUE, "task": TASK, "lock": row["thread"],
                                        "queueing_lock": row["delivery_id"],
                                        "args": Jsonb({"job_id": row["id"], "delivery_id": row["delivery_id"]})})
            return True

    async def forget_posted(self, marker: str) -> None:
        """The bot deleted what it had posted under ``marker``."""
        await self._exec("DELETE FROM posted WHERE marker = %s", (marker,))

    async def queued_threads(self) -> list[str]:
        """Threads with a job that may run now (a job re-queued by another process, a timer lost)."""
        rows = await self._all("SELECT thread FROM jobs WHERE state = 'queued' AND run_after <= %s"
                               " GROUP BY thread ORDER BY MIN(id)", (time.time(),))
        return [r["thread"] for r in rows]

    async def posted_since(self, repo: str, number: int, since: float) -> bool:
        """Whether the bot created anything on a thread since ``since`` (unix time)."""
        return await self._one("SELECT 1 AS x FROM posted WHERE repo = %s AND number = %s AND created_at >= %s LIMIT 1",
                               (repo, number, since)) is not None

    # ---- the truth about the store: /healthz and retention (bot/run/retention.py) --------------------
    async def probe_write(self) -> None:
        """Prove the store takes a write now: a row with a few KB, committed, deleted. Raises StoreUnavailable.

        The pad is random, so TOAST cannot compress it away: it needs the space a payload would."""
        async with self._tx() as conn:
            # /healthz must answer within a prober's timeout, not hang on a stuck server.
            await conn.execute("SET LOCAL statement_timeout = 2000")
            await conn.execute("INSERT INTO health_probe (at, pad) VALUES (%s, %s)", (time.time(), os.urandom(2048).hex()))
        await self._exec("DELETE FROM health_probe")  # every row: one left by a probe that failed half-way too

    # Same selection as the SQLite store's (see there); the literal '{}' matches migration 6's partial index.
    _PRUNE = ("UPDATE deliveries SET payload = '{}' WHERE id IN (SELECT d.id FROM deliveries d"
              " WHERE d.payload <> '{}' AND d.received_at <= %s AND EXISTS (SELECT 1 FROM jobs j"
              " WHERE j.delivery_id = d.id AND j.state IN ('done', 'dismissed')) LIMIT %s)")
    # Our queue's succeeded procrastinate jobs whose last event is older than the cutoff; their events go
    # with them (ON DELETE CASCADE), counted first.
    _PRUNE_QUEUE = """
        WITH old AS (
            SELECT j.id FROM procrastinate_jobs j WHERE j.queue_name = %(queue)s AND j.status = 'succeeded'
              AND (SELECT MAX(e.at) FROM procrastinate_events e WHERE e.job_id = j.id) < to_timestamp(%(cutoff)s)
            LIMIT %(batch)s),
        events AS (SELECT COUNT(*) AS n FROM procrastinate_events WHERE job_id IN (SELECT id FROM old)),
        gone AS (DELETE FROM procrastinate_jobs WHERE id IN (SELECT id FROM old) RETURNING id)
        SELECT (SELECT COUNT(*) FROM gone) AS jobs, (SELECT n FROM events) AS events
    """

    async def prune(self, older_than_seconds: float, now: float | None = None) -> dict[str, int]:
        """Forget the payloads of deliveries done and received ``older_than_seconds`` before ``now``, and delete
        procrastinate's succeeded jobs (and their events) as old; counts of each.

        Failed, queued and running jobs keep their payloads; delivery ids, runs, steps and posted records stay.
        In batches, each its own short transaction."""
        cutoff = (time.time() if now is None else now) - older_than_seconds
        counts = {"payloads": 0, "procrastinate_jobs": 0, "procrastinate_events": 0}
        while True:
            async with self._tx() as conn:
                n = (await conn.execute(self._PRUNE, (cutoff, PRUNE_BATCH))).rowcount
            counts["payloads"] += n
            if n < PRUNE_BATCH:
                break
        while True:
            row = await self._one(self._PRUNE_QUEUE, {"queue": QUEUE, "cutoff": cutoff, "batch": PRUNE_BATCH})
            if row is None:
                raise RuntimeError("the procrastinate pruning query returned no row")
            counts["procrastinate_jobs"] += int(row["jobs"])
            counts["procrastinate_events"] += int(row["events"])
            if row["jobs"] < PRUNE_BATCH:
                break
        async with self._tx() as conn:  # GitHub keeps deliveries 3 days: older asks are of no use
            counts["redeliveries"] = (await conn.execute("DELETE FROM redeliveries WHERE requested_at <= %s",
                                                         (cutoff,))).rowcount
        async with self._tx() as conn:  # window counters look back an hour at most (a day's events are plenty)
            counts["limit_events"] = (await conn.execute("DELETE FROM limit_events WHERE at <= %s",
                                                         ((time.time() if now is None else now) - 86_400,))).rowcount
            counts["reservations"] = (await conn.execute(
                "DELETE FROM spend_reservations WHERE settled = 1 AND at <= %s", (cutoff,))).rowcount
        return counts

    async def claim_redelivery(self, guid: str, delivery_id: int) -> bool:
        """Record that the sweep asks GitHub to redeliver ``guid``; False if it (or another process) did."""
        row = await self._one("INSERT INTO redeliveries (guid, delivery_id, requested_at) VALUES (%s, %s, %s)"
                              " ON CONFLICT (guid) DO NOTHING RETURNING guid", (guid, delivery_id, time.time()))
        return row is not None

    async def release_redelivery(self, guid: str) -> None:
        """The ask for ``guid`` did not reach GitHub: the next sweep may ask again."""
        await self._exec("DELETE FROM redeliveries WHERE guid = %s", (guid,))

    async def dismiss_failed(self, job_id: int) -> bool:
        """A failed job nobody will retry: its payload may go at the next retention pass; False if not failed."""
        row = await self._one("UPDATE jobs SET state = 'dismissed', updated_at = %s WHERE id = %s AND state = 'failed'"
                              " RETURNING id", (time.time(), job_id))
        return row is not None
