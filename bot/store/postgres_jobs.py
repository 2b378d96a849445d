"""The PostgreSQL store's job queue: deliveries in, each job enqueued in procrastinate in the same
transaction (deliveries that arrive together share one: group commit, as bot/store/intake.py does it for
both stores), stalled workers' jobs put back; failed jobs as people see them (the acknowledger, ``/retry``,
``python -m bot jobs``) and redelivery claims.

:class:`PostgresJobs` is mixed into :class:`bot.store.postgres.PostgresStore`, which supplies the pool.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from contextlib import AbstractAsyncContextManager
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from bot.store.base import Delivery, Job, JobInfo, StoreUnavailable, job_info
from bot.store.intake import HOOK_BUDGET, Intake, first_seen, stored_payload

# The procrastinate queue and task every delivery's job goes to; bot/run/pg_worker.py registers the task.
QUEUE = "triage-lead"
TASK = "triage-lead.process-job"
# Advisory-lock key (bot/store/postgres.py holds the others): one worker at a time re-queues dead workers' jobs.
_STALLED_LOCK = 0x7472_6961_6765_02

# Enqueue through procrastinate's own function, so the insert is exactly what ``defer_async`` would do,
# but inside our transaction. ``lock`` = thread: procrastinate runs one job per lock at a time, oldest
# first. ``queueing_lock`` = delivery id: a second "todo" job for the same delivery is refused.
_DEFER = """
SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(
    %(queue)s, %(task)s, 0, %(lock)s, %(queueing_lock)s, %(args)s, NULL
)::procrastinate_job_to_defer_v1])) AS id
"""
# A batch in one statement (one round trip, whatever its size): the deliveries not seen before, a job row for
# each of them in the order they arrived (a thread's jobs run oldest first), and ONE call of procrastinate's
# defer for all those jobs, as _DEFER's rows. Arrays, not a placeholder per value: the text is the same for
# every batch, so psycopg converts it once and the server plans it once per connection (psycopg prepares what
# repeats); bound in binary, as a text array of 12 KB payloads costs the server more to parse than to store.
# Deliveries are given sorted by id (see _insert_batch), the job rows' ids and threads in arrival order.
_INSERT_BATCH = """
WITH new AS (
    INSERT INTO deliveries (id, event, action, installation_id, repo, thread, received_at, payload)
    SELECT id, event, action, installation_id, repo, thread, %(now)s, payload
    FROM unnest(%(ids)b::text[], %(events)b::text[], %(actions)b::text[], %(installations)b::bigint[],
                %(repos)b::text[], %(threads)b::text[], %(payloads)b::text[])
         AS d(id, event, action, installation_id, repo, thread, payload)
    ON CONFLICT (id) DO NOTHING RETURNING id
), jobs AS (
    INSERT INTO jobs (delivery_id, thread, state, created_at, updated_at)
    SELECT id, thread, 'queued', %(now)s, %(now)s
    FROM unnest(%(arrived)b::text[], %(arrived_threads)b::text[]) WITH ORDINALITY AS d(id, thread, n)
    WHERE id IN (SELECT id FROM new) ORDER BY n
    RETURNING id, delivery_id, thread
), deferred AS (
    SELECT procrastinate_defer_jobs_v1(ARRAY(
        SELECT ROW(%(queue)s, %(task)s, 0, thread, delivery_id,
                   jsonb_build_object('job_id', id, 'delivery_id', delivery_id), NULL)::procrastinate_job_to_defer_v1
        FROM jobs ORDER BY id)) AS ids
)
SELECT ARRAY(SELECT id FROM new) AS new, (SELECT cardinality(ids) FROM deferred) AS deferred
"""  # (reading "deferred" is what runs it: PostgreSQL skips a plain SELECT in WITH that nothing reads)
# For this transaction only. lz4 compresses a 12 KB payload in a quarter of pglz's time (the default), the
# one cost of an insert that grows with the payload; a server built without it keeps pglz.
_SETTINGS = "SELECT set_config('lock_timeout', %s, true)"
_SETTINGS_LZ4 = _SETTINGS + ", set_config('default_toast_compression', 'lz4', true)"


async def _has_lz4(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether the server can compress with lz4 (PostgreSQL 14 and later, when built with it)."""
    row = await (await conn.execute("SELECT 'lz4' = ANY(enumvals) AS lz4 FROM pg_settings"
                                    " WHERE name = 'default_toast_compression'")).fetchone()
    return bool(row and row["lz4"])


def _left(deadline: float) -> float:
    """Seconds until ``deadline`` (time.monotonic); StoreUnavailable if it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise StoreUnavailable("the webhook's budget ran out before the store was reached")
    return left


class PostgresJobs:
    """The queue's methods of the PostgreSQL store."""

    pool: AsyncConnectionPool[Any]  # PostgresStore's (its connections make dict rows)
    hook_budget = HOOK_BUDGET  # seconds a delivery may wait, queued, for a connection or a lock, before its 503
    _lz4: bool | None = None  # whether the server compresses with lz4 (asked on the first batch)
    _held: psycopg.AsyncConnection[Any] | None = None  # the last batch's connection, kept for the next
    _putting: asyncio.Future[None] | None = None  # _release_held's return of it to the pool

    def _tx(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        raise NotImplementedError  # PostgresStore's: one transaction

    async def _all(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        raise NotImplementedError  # PostgresStore's

    async def _one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        raise NotImplementedError  # PostgresStore's

    async def _exec(self, sql: str, params: Any = None) -> None:
        raise NotImplementedError  # PostgresStore's

    # ---- deliveries and jobs -------------------------------------------------------------
    async def accept_delivery(self, d: Delivery) -> bool:
        """Record a delivery, our job row and its procrastinate job, committed before this returns (group
        commit: see :class:`Intake` and :meth:`_insert_batch`); False if already seen.

        Concurrent copies of one delivery id, from this process or another, serialise on the primary key: the
        others wait for the first to commit, then insert nothing and enqueue nothing.
        """
        return await self._intake().accept(d)

    def _intake(self) -> Intake:
        """The store's batching state, made on first use (on the event loop's thread: no race)."""
        intake: Intake | None = getattr(self, "_intake_state", None)
        if intake is None:
            # The batch's wait for a connection and for another process's copy of a delivery id count against
            # what its oldest caller has left.
            def write(ds: list[Delivery], left: float) -> Awaitable[list[bool]]:
                return self._insert_batch(ds, time.monotonic() + left)
            intake = Intake(write=write, budget=self.hook_budget)
            self._intake_state = intake
        return intake

    async def _insert_batch(self, deliveries: list[Delivery], deadline: float) -> list[bool]:
        """Deliveries, their job rows and procrastinate jobs in one transaction, one statement; for each
        delivery, whether it was new (False: its id was stored before, or came earlier in this batch). Raises
        StoreUnavailable, having rolled back, if any of it fails or ``deadline`` (time.monotonic) passes while
        it waits for a connection or a lock: none of the batch is then stored."""
        unique = [d for d, f in zip(deliveries, first_seen(deliveries, set()), strict=True) if f]
        # Sorted by id: two processes' batches lock the ids they share in the same order, never each holding
        # one the other waits for (a deadlock PostgreSQL breaks only after a second, failing a batch).
        rows = sorted(unique, key=lambda d: d.id)
        try:
            conn = await self._connection(deadline)
            keep = False
            try:
                if self._lz4 is None:
                    self._lz4 = await _has_lz4(conn)
                    await conn.commit()  # the read's own transaction, before the batch's
                # BEGIN, the settings, the batch and COMMIT are sent together and answered together: one
                # round trip. If the batch fails, PostgreSQL skips the COMMIT (the pipeline is aborted), the
                # error is raised here, and the pool rolls the transaction back.
                async with conn.pipeline():
                    async with conn.transaction():
                        # Waiting for another process's uncommitted copy of an id is bounded as SQLite's busy
                        # timeout is.
                        await conn.execute(_SETTINGS_LZ4 if self._lz4 else _SETTINGS,
                                           (f"{max(1, int(_left(deadline) * 1000))}ms",))
                        cur = await conn.execute(_INSERT_BATCH, {
                            "now": time.time(), "ids": [d.id for d in rows], "events": [d.event for d in rows],
                            "actions": [d.action for d in rows], "installations": [d.installation_id for d in rows],
                            "repos": [d.repo for d in rows], "threads": [d.thread for d in rows],
                            "payloads": [stored_payload(d) for d in rows], "arrived": [d.id for d in unique],
                            "arrived_threads": [d.thread for d in unique], "queue": QUEUE, "task": TASK})
                row = await cur.fetchone()
                if row is None:  # never (a SELECT without FROM has its row); a 503 if it were, never a 202
                    raise StoreUnavailable("a batch of deliveries returned nothing")
                keep = bool(self._intake().pending)
                return first_seen(deliveries, {d.id for d in unique} - set(row["new"]))
            finally:
                if keep:
                    self._held = conn
                    asyncio.get_running_loop().call_soon(self._release_held)
                else:  # the pool rolls back what a failure left open, and replaces a broken connection
                    await self.pool.putconn(conn)
        except (psycopg.Error, PoolTimeout, PoolClosed) as exc:  # the webhook answers 503, never a 500
            raise StoreUnavailable(" ".join(str(exc).split()) or type(exc).__name__) from exc

    async def _connection(self, deadline: float) -> psycopg.AsyncConnection[Any]:
        """The connection the last batch kept, its successor having waited already, else one from the pool
        within the budget. The pool checks each connection it hands out (a round trip through an event loop
        busy with requests: a quarter of a batch's time under load), so batches back to back skip it: their
        connection answered a moment ago. Takes it before any ``await``: see :meth:`_release_held`."""
        conn, self._held = self._held, None
        if conn is not None and not self.pool.closed and not conn.closed:
            return conn
        if conn is not None:
            await self.pool.putconn(conn)
        return await self.pool.getconn(timeout=_left(deadline))

    def _release_held(self) -> None:
        """Called soon after a batch kept its connection: by then the next batch took it (Intake writes the
        next one without yielding to the loop) or there is none (its callers waited out their budget), and the
        connection goes back to the pool."""
        conn, self._held = self._held, None
        if conn is not None:
            self._putting = asyncio.ensure_future(self.pool.putconn(conn))

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

    async def failed_jobs(self, thread: str | None = None, limit: int = 100, *,
                          repo: str | None = None) -> list[JobInfo]:
        """Failed jobs, newest first (of one thread, or of one repository's threads, if given)."""
        if thread:
            rows = await self._all(self._INFO + " WHERE j.state = 'failed' AND j.thread = %s ORDER BY j.id DESC LIMIT %s",
                                   (thread, limit))
        elif repo:  # not LIKE: "_" in a repository's name is a wildcard there
            rows = await self._all(self._INFO + " WHERE j.state = 'failed' AND (j.thread = %s OR substr(j.thread, 1, %s)"
                                   " = %s) ORDER BY j.id DESC LIMIT %s", (repo, len(repo) + 1, repo + "#", limit))
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

    async def queued_threads(self) -> list[str]:
        """Threads with a job that may run now (a job re-queued by another process, a timer lost)."""
        rows = await self._all("SELECT thread FROM jobs WHERE state = 'queued' AND run_after <= %s"
                               " GROUP BY thread ORDER BY MIN(id)", (time.time(),))
        return [r["thread"] for r in rows]

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
