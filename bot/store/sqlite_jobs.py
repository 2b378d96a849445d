"""The SQLite store's job queue: deliveries in, one job each, taken one thread at a time; failed jobs as
people see them (the acknowledger, ``/retry``, ``python -m bot jobs``) and redelivery claims.

:class:`SQLiteJobs` is mixed into :class:`bot.store.sqlite.SQLiteStore`, which supplies the connections.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot.store.base import Delivery, Job, JobInfo, StoreUnavailable, job_info
from bot.store.intake import HOOK_BUDGET, Intake, first_seen, read_payload, stored_payload

T = TypeVar("T")


def rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite rolls back by itself on SQLITE_FULL or SQLITE_BUSY,
    and a second ROLLBACK would raise "no transaction is active" over the error that says what happened."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def _insert_new(db: sqlite3.Connection, deliveries: list[Delivery]) -> list[bool]:
    """Inside the caller's write transaction: the deliveries not seen before and their jobs, each table in one
    statement. Few statements matter more than few rows: sqlite3 lets go of the GIL for each statement it
    steps, and getting it back from a busy event loop can take the whole switch interval (5 ms)."""
    marks = ",".join("?" * len(deliveries))
    seen = {r[0] for r in db.execute(f"SELECT id FROM deliveries WHERE id IN ({marks})", [d.id for d in deliveries])}
    fresh = first_seen(deliveries, seen)
    new = [d for d, f in zip(deliveries, fresh, strict=True) if f]
    if new:
        now = time.time()
        db.execute("INSERT INTO deliveries (id, event, action, installation_id, repo, thread, received_at, payload)"
                   " VALUES " + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(new)),
                   [v for d in new for v in (d.id, d.event, d.action, d.installation_id, d.repo, d.thread, now,
                                             stored_payload(d))])
        db.execute("INSERT INTO jobs (delivery_id, thread, state, created_at, updated_at) VALUES "
                   + ",".join(["(?, ?, 'queued', ?, ?)"] * len(new)),
                   [v for d in new for v in (d.id, d.thread, now, now)])
    return fresh


def insert_batch(db: sqlite3.Connection, deliveries: list[Delivery], lock: threading.Lock,
                 deadline: float) -> list[bool]:
    """Deliveries and their jobs in one transaction; for each, whether it was new (False: its id was seen,
    before or earlier in this batch). Raises, having rolled back, if any of it fails: none is then stored.
    ``deadline`` (time.monotonic) ends the webhook's budget for this batch."""
    if not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
        raise StoreUnavailable("database is locked (by this process's jobs)")
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            fresh = _insert_new(db, deliveries)
            db.execute("COMMIT")
            return fresh
        except BaseException:
            rollback(db)
            raise
    finally:
        lock.release()


def claim(db: sqlite3.Connection, thread: str) -> sqlite3.Row | None:
    """The oldest queued job of a thread, marked running, with its delivery; None if the thread is busy or
    has nothing to run now."""
    db.execute("BEGIN IMMEDIATE")
    try:
        busy = db.execute("SELECT 1 FROM jobs WHERE thread = ? AND state = 'running'", (thread,)).fetchone()
        row = None if busy else db.execute(
            "SELECT j.id, j.delivery_id, j.thread, j.attempts, j.run_after, d.event, d.payload FROM jobs j"
            " JOIN deliveries d ON d.id = j.delivery_id WHERE j.thread = ? AND j.state = 'queued'"
            " ORDER BY j.id LIMIT 1", (thread,)).fetchone()
        if row is not None and row["run_after"] > time.time():
            row = None  # the thread's oldest job waits for its retry: later ones wait behind it
        if row is not None:
            db.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, updated_at = ? WHERE id = ?",
                       (time.time(), row["id"]))
        db.execute("COMMIT")
    except BaseException:
        rollback(db)
        raise
    return row  # type: ignore[no-any-return]


class SQLiteJobs:
    """The queue's methods of the SQLite store."""

    hook_budget = HOOK_BUDGET  # seconds a delivery may wait, queued or for the lock (SQLiteStore's own)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SQLiteStore's: fn on the jobs' connection and thread

    async def _run_hook(self, fn: Callable[[sqlite3.Connection], T], deadline: float | None = None) -> T:
        raise NotImplementedError  # SQLiteStore's: fn on the webhook's connection, within its time budget

    async def accept_delivery(self, d: Delivery) -> bool:
        """Record a delivery and enqueue its job, committed before this returns (group commit: see
        :class:`Intake`); False if already seen."""
        return await self._intake().accept(d)

    def _intake(self) -> Intake:
        """The store's batching state, made on first use (on the event loop's thread: no race)."""
        intake: Intake | None = getattr(self, "_intake_state", None)
        if intake is None:
            lock = threading.Lock()
            def write(ds: list[Delivery], left: float) -> Awaitable[list[bool]]:
                deadline = time.monotonic() + left  # the lock's wait and SQLite's own, within the oldest's budget
                return self._run_hook(lambda db: insert_batch(db, ds, lock, deadline), deadline)
            intake = Intake(write=write, lock=lock, budget=self.hook_budget)
            self._intake_state = intake
        return intake

    async def claim_job(self, thread: str) -> Job | None:
        """Take the oldest queued job of a thread, unless one of that thread is already running."""
        lock = self._intake().lock

        def tx(db: sqlite3.Connection) -> Job | None:
            with lock:
                row = claim(db, thread)
            if row is None:
                return None
            return Job(id=row["id"], delivery_id=row["delivery_id"], thread=row["thread"], event=row["event"],
                       payload=read_payload(row["payload"]), attempts=row["attempts"] + 1)
        return await self._run(tx)

    async def finish_job(self, job_id: int, *, error: str | None = None) -> None:
        state, lock = "failed" if error else "done", self._intake().lock

        def write(db: sqlite3.Connection) -> None:
            with lock:
                db.execute("UPDATE jobs SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                           (state, error, time.time(), job_id))
        await self._run(write)

    async def retry_job(self, job_id: int, *, after: float, error: str) -> None:
        """A failed job goes back to the queue, to be taken again ``after`` seconds from now. Its thread is told
        again of the wait (noted_at cleared): the note then says why it waits and until when."""
        await self._run(lambda db: db.execute(
            "UPDATE jobs SET state = 'queued', error = ?, run_after = ?, updated_at = ?,"
            " noted_at = NULL WHERE id = ?",
            (error, time.time() + after, time.time(), job_id)))

    async def recover(self) -> list[str]:
        """At start-up: jobs a dead process left running go back to the queue; return threads with work."""
        def tx(db: sqlite3.Connection) -> list[str]:
            db.execute("UPDATE jobs SET state = 'queued', updated_at = ? WHERE state = 'running'", (time.time(),))
            return [r[0] for r in db.execute(
                "SELECT thread FROM jobs WHERE state = 'queued' GROUP BY thread ORDER BY MIN(id)")]
        return await self._run(tx)

    async def job_states(self) -> dict[str, int]:
        return await self._run(
            lambda db: {r[0]: r[1] for r in db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")})

    async def jobs_for(self, delivery_id: str) -> list[dict[str, Any]]:
        # On the webhook's connection: a redelivery asks this, and must answer within GitHub's patience.
        return await self._run_hook(lambda db: [dict(r) for r in db.execute(
            "SELECT * FROM jobs WHERE delivery_id = ?", (delivery_id,))])

    # ---- jobs as people see them: the acknowledger, /retry, `python -m bot jobs` ------------------
    _INFO = ("SELECT j.id, j.delivery_id, j.thread, j.attempts, j.state, j.error, j.run_after, j.created_at,"
             " d.event, d.payload FROM jobs j JOIN deliveries d ON d.id = j.delivery_id")

    async def unnoted_jobs(self, older_than: float, limit: int = 50) -> list[JobInfo]:
        """Jobs queued or running for ``older_than`` seconds whose thread was not told of them yet."""
        rows = await self._run(lambda db: db.execute(
            self._INFO + " WHERE j.state IN ('queued', 'running') AND j.noted_at IS NULL AND j.created_at <= ?"
            " ORDER BY j.id LIMIT ?", (time.time() - older_than, limit)).fetchall())
        return [job_info(r) for r in rows]

    async def mark_noted(self, job_id: int) -> bool:
        """Claim the telling of a job's thread; False if another process told it already."""
        cur = await self._run(lambda db: db.execute(
            "UPDATE jobs SET noted_at = ? WHERE id = ? AND noted_at IS NULL", (time.time(), job_id)))
        return bool(cur.rowcount)

    async def job_info(self, job_id: int) -> JobInfo | None:
        row = await self._run_hook(lambda db: db.execute(self._INFO + " WHERE j.id = ?", (job_id,)).fetchone())
        return job_info(row) if row else None

    async def failed_jobs(self, thread: str | None = None, limit: int = 100, *,
                          repo: str | None = None) -> list[JobInfo]:
        """Failed jobs, newest first (of one thread, or of one repository's threads, if given)."""
        args: list[object]
        where, args = "WHERE j.state = 'failed'", []
        if thread:
            where, args = where + " AND j.thread = ?", [thread]
        elif repo:  # not LIKE: "_" in a repository's name is a wildcard there
            where, args = where + " AND (j.thread = ? OR substr(j.thread, 1, ?) = ?)", [repo, len(repo) + 1, repo + "#"]
        rows = await self._run(lambda db: db.execute(
            self._INFO + f" {where} ORDER BY j.id DESC LIMIT ?", (*args, limit)).fetchall())
        return [job_info(r) for r in rows]

    async def requeue_failed(self, job_id: int) -> bool:
        """A failed job goes back to the queue with its attempts reset; False if it was not failed. (On the
        webhook's connection: a redelivery does this, and must answer within GitHub's patience.)"""
        cur = await self._run_hook(lambda db: db.execute(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_after = 0, updated_at = ? "
            "WHERE id = ? AND state = 'failed'",
            (time.time(), job_id)))
        return bool(cur.rowcount)

    async def queued_threads(self) -> list[str]:
        """Threads with a job that may run now (a job re-queued by another process, a timer lost)."""
        rows = await self._run(lambda db: db.execute(
            "SELECT thread FROM jobs WHERE state = 'queued' AND run_after <= ? GROUP BY thread ORDER BY MIN(id)",
            (time.time(),)).fetchall())
        return [r[0] for r in rows]

    async def claim_redelivery(self, guid: str, delivery_id: int) -> bool:
        """Record that the sweep asks GitHub to redeliver ``guid``; False if it (or another process) did."""
        cur = await self._run(lambda db: db.execute(
            "INSERT INTO redeliveries (guid, delivery_id, requested_at) VALUES (?, ?, ?) ON CONFLICT (guid) DO NOTHING",
            (guid, delivery_id, time.time())))
        return bool(cur.rowcount)

    async def release_redelivery(self, guid: str) -> None:
        """The ask for ``guid`` did not reach GitHub: the next sweep may ask again."""
        await self._run(lambda db: db.execute("DELETE FROM redeliveries WHERE guid = ?", (guid,)))

    async def dismiss_failed(self, job_id: int) -> bool:
        """A failed job nobody will retry: its payload may go at the next retention pass; False if not failed."""
        cur = await self._run_hook(lambda db: db.execute(
            "UPDATE jobs SET state = 'dismissed', updated_at = ? WHERE id = ? AND state = 'failed'", (time.time(), job_id)))
        return bool(cur.rowcount)
