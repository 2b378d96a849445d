"""The PostgreSQL store: psycopg 3 async pool, the same migrations as SQLite, procrastinate's queue beside them.

Several processes (``serve`` and any number of ``worker``) share one database, so the schema is
migrated under an advisory lock, and a delivery, our job row and its procrastinate job are written in
one transaction: after the webhook's 2xx nothing can be lost, and a rollback enqueues nothing. The job
queue's methods are in bot/store/postgres_jobs.py, its migrations in bot/store/postgres_migrate.py.

Long because each of the store's writes is one transaction, with its statements beside the others it runs with,
mirroring the SQLite store (bot/store/sqlite.py) method for method.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from bot.store.base import (
    CLAIM_FILING,
    CLOSE_FINDINGS,
    FINAL_STATES,
    FINDINGS_KEEP_SECONDS,
    FINDINGS_PAGE,
    NOTHING,
    RENEW_FILING,
    Along,
    Posted,
    PullFindings,
    RunRecord,
    StepRecord,
    StoreUnavailable,
    findings_of,
    none_open,
)
from bot.store.limits import Cap, Limit, fits, nth_newest_wait
from bot.store.migrations import MIGRATIONS
from bot.store.postgres_jobs import QUEUE, TASK, PostgresJobs
from bot.store.postgres_migrate import migrate, postgres_sql
from bot.store.run_format import patch_keys

__all__ = ["QUEUE", "TASK", "PostgresStore", "postgres_sql"]  # QUEUE, TASK: procrastinate registers its task by them

# Advisory-lock keys (any constant bigint; they only need to differ from each other).
# (The migration lock's key is bot/store/postgres_migrate.py's MIGRATE_LOCK.)
_LIMIT_LOCKS = 0x7472_6961  # the first key of the two-key advisory locks taken per limit key (hashtext is the second)

# Connection trouble (server down, network, pool exhausted or closed) is what the webhook answers 503 for.
_UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout, PoolClosed)
# (A full disk, DiskFull, and a statement timeout, QueryCanceled, are OperationalErrors too.)

PRUNE_BATCH = 1000  # rows per retention transaction: short ones, never a long lock on deliveries


DB_NOW = "extract(epoch from clock_timestamp())::double precision"  # the one clock every worker shares


def _pg(sql: str) -> str:
    """bot/store/base.py's shared SQL with PostgreSQL's placeholders (it holds no literal question mark)."""
    return sql.replace("?", "%s")


def _why(exc: BaseException) -> str:
    """psycopg's message on one line (libpq adds hints on further lines); never holds the password."""
    return " ".join(str(exc).split()) or type(exc).__name__


class PostgresStore(PostgresJobs):
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

    async def _migrate(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """bot/store/postgres_migrate.py's pass, with MIGRATIONS as this module has them (tests put in fewer)."""
        await migrate(conn, MIGRATIONS, lambda: psycopg.AsyncConnection.connect(
            self.url, autocommit=True, connect_timeout=int(self.connect_timeout)))

    async def close(self) -> None:
        await self.pool.close()

    async def schema_version(self) -> int:
        row = await self._one("SELECT MAX(version) AS v FROM schema_migrations")
        return int(row["v"] or 0) if row else 0

    # ---- what the bot posted ---------------------------------------------------------------
    _REMEMBER = ("INSERT INTO posted (marker, repo, kind, github_id, number, url, created_at)"
                 " VALUES (%s, %s, %s, %s, %s, %s, %s)"
                 " ON CONFLICT (marker) DO UPDATE SET github_id = excluded.github_id, url = excluded.url")

    async def remember_posted(self, p: Posted) -> None:
        await self._exec(self._REMEMBER, (p.marker, p.repo, p.kind, p.github_id, p.number, p.url, time.time()))

    async def find_posted(self, marker: str) -> Posted | None:
        row = await self._one("SELECT * FROM posted WHERE marker = %s", (marker,))
        if row is None:
            return None
        return Posted(marker=row["marker"], repo=row["repo"], kind=row["kind"], github_id=row["github_id"],
                      number=row["number"], url=row["url"])

    # ---- workflow runs, steps, usage -----------------------------------------------------------
    async def save_run(self, run: RunRecord, along: Along = NOTHING) -> None:
        now = time.time()
        async with self._tx() as conn:
            await conn.execute(
                "INSERT INTO runs (id, thread, repo, number, installation_id, workflow, state, data, created_at,"
                " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                " workflow = excluded.workflow, state = excluded.state, data = excluded.data,"
                " updated_at = excluded.updated_at",
                (run.id, run.thread, run.repo, run.number, run.installation_id, run.workflow, run.state,
                 json.dumps(run.data), now, now))
            if along.posted:
                async with conn.cursor() as cur:
                    await cur.executemany(self._REMEMBER, [(p.marker, p.repo, p.kind, p.github_id, p.number, p.url,
                                                            now) for p in along.posted])
            if along.step is not None:
                await self._write_step(conn, along.step, along.usage_day)

    async def save_run_fields(self, run: RunRecord, fields: dict[str, str], along: Along = NOTHING) -> bool:
        """Never partial here: the only in-database merge is jsonb's, which reorders every object's keys (the
        steps' workflow order, the order of kept verdicts) and refuses U+0000, which any issue text may hold.
        False: the caller saves the run whole, as it does for a row the store does not hold."""
        patch_keys(fields)  # a key the format does not have is refused here as on SQLite
        return False

    async def load_run(self, run_id: str) -> RunRecord | None:
        return RunRecord.from_row(await self._one("SELECT * FROM runs WHERE id = %s", (run_id,)))

    async def active_run(self, thread: str) -> RunRecord | None:
        return RunRecord.from_row(await self._one(
            "SELECT * FROM runs WHERE thread = %s AND NOT (state = ANY(%s)) ORDER BY created_at DESC LIMIT 1",
            (thread, sorted(FINAL_STATES))))

    async def active_runs(self, repo: str, installation_id: int, limit: int = 100) -> list[RunRecord]:
        rows = await self._all("SELECT * FROM runs WHERE repo = %s AND installation_id = %s AND NOT (state = ANY(%s))"
                               " ORDER BY created_at DESC LIMIT %s", (repo, installation_id, sorted(FINAL_STATES), limit))
        return [r for r in map(RunRecord.from_row, rows) if r is not None]

    async def run_states(self) -> dict[str, int]:
        return {r["state"]: int(r["n"]) for r in await self._all("SELECT state, COUNT(*) AS n FROM runs GROUP BY state")}

    async def save_step(self, step: StepRecord, usage_day: tuple[int, str] | None = None) -> None:
        async with self._tx() as conn:
            await self._write_step(conn, step, usage_day)

    async def _write_step(self, conn: psycopg.AsyncConnection[Any], step: StepRecord,
                          usage_day: tuple[int, str] | None) -> None:
        """Inside the caller's transaction: a step's record, and its tokens added to ``usage_day``'s."""
        await conn.execute(
            "INSERT INTO steps (run_id, step_id, iteration, status, output, input_tokens, output_tokens,"
            " cache_read_tokens, cache_write_tokens, cost_usd, provenance, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (run_id, step_id, iteration) DO UPDATE SET status = excluded.status,"
            " output = excluded.output, input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,"
            " cache_read_tokens = excluded.cache_read_tokens, cache_write_tokens = excluded.cache_write_tokens,"
            " cost_usd = excluded.cost_usd, provenance = excluded.provenance, updated_at = excluded.updated_at",
            (step.run_id, step.step_id, step.iteration, step.status,
             None if step.output is None else json.dumps(step.output), step.input_tokens, step.output_tokens,
             step.cache_read_tokens, step.cache_write_tokens, step.cost_usd,
             None if step.provenance is None else json.dumps(step.provenance), time.time()))
        if usage_day is not None:
            await conn.execute(self._ADD_USAGE, (*usage_day, step.tokens, step.cost_usd))

    async def steps_of(self, run_id: str) -> list[StepRecord]:
        rows = await self._all("SELECT * FROM steps WHERE run_id = %s ORDER BY updated_at, step_id, iteration",
                               (run_id,))
        return [StepRecord.from_row(r) for r in rows]

    _ADD_USAGE = ("INSERT INTO usage_daily (installation_id, day, tokens, cost_usd) VALUES (%s, %s, %s, %s)"
                  " ON CONFLICT (installation_id, day) DO UPDATE SET tokens = usage_daily.tokens + excluded.tokens,"
                  " cost_usd = usage_daily.cost_usd + excluded.cost_usd")

    async def add_usage(self, installation_id: int, day: str, tokens: int, cost_usd: float) -> None:
        await self._exec(self._ADD_USAGE, (installation_id, day, tokens, cost_usd))

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
            nth: dict[str, float | None] = {}
            for key, limit, window in limits:
                await conn.execute("DELETE FROM limit_events WHERE key = %s AND at <= %s", (key, at - window))
                row = await (await conn.execute(
                    "SELECT at FROM limit_events WHERE key = %s ORDER BY at DESC LIMIT 1 OFFSET %s",
                    (key, max(0, limit - 1)))).fetchone()
                nth[key] = row["at"] if row else None
            wait = nth_newest_wait(limits, nth, at)
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

    async def save_findings(self, found: PullFindings) -> None:
        await self._exec(
            "INSERT INTO pull_findings (repo, number, sha, findings, saved_at) VALUES (%s, %s, %s, %s, %s) ON CONFLICT"
            " (repo, number) DO UPDATE SET sha = excluded.sha, findings = excluded.findings, saved_at = excluded.saved_at",
            (found.repo, found.number, found.sha, json.dumps(found.findings), time.time()))

    async def forget_findings(self, repo: str, number: int) -> None:
        await self._exec("DELETE FROM pull_findings WHERE repo = %s AND number = %s", (repo, number))

    async def close_findings(self, repo: str, number: int, closed_at: float | None, *, at: float | None = None,
                             sha: str = "") -> bool:
        return await self._one(_pg(CLOSE_FINDINGS) + " RETURNING 1 AS x",
                               (repo, number, sha, time.time(), closed_at, at)) is not None

    async def findings_page(self, after: tuple[str, int] = ("", 0), limit: int = 100) -> list[PullFindings]:
        return findings_of(await self._all(_pg(FINDINGS_PAGE), (*after, limit)))

    async def claim_filing(self, filed: str, public: str, lease: float) -> str | None:
        row = await self._one(_pg(CLAIM_FILING.format(now=DB_NOW)), (filed, public, lease))
        return None if row is None else str(row["public"])

    async def renew_filing(self, filed: str) -> None:
        await self._exec(_pg(RENEW_FILING.format(now=DB_NOW)), (filed,))

    async def note_filing(self, filed: str, public: str) -> None:
        await self._exec("UPDATE debt_filings SET public = %s WHERE filed = %s", (public, filed))

    async def release_filing(self, filed: str) -> None:
        await self._exec("UPDATE debt_filings SET claimed_at = 0 WHERE filed = %s", (filed,))

    async def note_done(self, name: str) -> None:
        await self._exec("INSERT INTO store_notes (name, at) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
                         (name, time.time()))

    async def is_done(self, name: str) -> bool:
        return await self._one("SELECT 1 AS x FROM store_notes WHERE name = %s", (name,)) is not None

    async def load_findings(self, repo: str, number: int) -> PullFindings | None:
        row = await self._one("SELECT sha, findings FROM pull_findings WHERE repo = %s AND number = %s", (repo, number))
        return PullFindings.from_row(repo, number, row)

    async def forget_posted(self, marker: str, github_id: int | None = None) -> bool:
        """The bot deleted what it had posted under ``marker`` (with ``github_id``: only while it holds that id)."""
        if github_id is None:
            return await self._one("DELETE FROM posted WHERE marker = %s RETURNING 1 AS x", (marker,)) is not None
        return await self._one("DELETE FROM posted WHERE marker = %s AND github_id = %s RETURNING 1 AS x",
                               (marker, github_id)) is not None

    async def mark_due(self, repo: str, installation_id: int, at: float) -> int:
        row = await self._one(
            "INSERT INTO dashboard_due (repo, installation_id, due_at) VALUES (%s, %s, %s) ON CONFLICT (repo) DO"
            " UPDATE SET installation_id = excluded.installation_id, marks = dashboard_due.marks + 1,"
            " due_at = excluded.due_at RETURNING marks",
            (repo, installation_id, at))
        return int(row["marks"]) if row else 0

    async def clear_due(self, repo: str, marks: int | None = None) -> bool:
        if marks is None:
            return await self._one("DELETE FROM dashboard_due WHERE repo = %s RETURNING 1 AS x", (repo,)) is not None
        return await self._one("DELETE FROM dashboard_due WHERE repo = %s AND marks = %s RETURNING 1 AS x",
                               (repo, marks)) is not None

    async def due_dashboards(self, limit: int = 100) -> list[tuple[str, int]]:
        rows = await self._all("SELECT repo, installation_id FROM dashboard_due ORDER BY due_at, repo LIMIT %s",
                               (limit,))
        return [(str(r["repo"]), int(r["installation_id"])) for r in rows]

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
            quiet = (time.time() if now is None else now) - max(older_than_seconds, FINDINGS_KEEP_SECONDS)
            rows = await (await conn.execute("SELECT repo, number, findings FROM pull_findings WHERE saved_at <= %s",
                                             (quiet,))).fetchall()
            gone = [(r["repo"], r["number"]) for r in rows if none_open(r["findings"])]
            if gone:
                await conn.cursor().executemany(
                    "DELETE FROM pull_findings WHERE repo = %s AND number = %s AND saved_at <= %s",
                    [(*key, quiet) for key in gone])
            counts["pull_findings"] = len(gone)
        while True:  # closed unmerged: no merge is coming to file what is open (batched, as payloads are)
            async with self._tx() as conn:
                n = (await conn.execute(self._PRUNE_CLOSED, (quiet, PRUNE_BATCH))).rowcount
            counts["pull_findings"] += n
            if n < PRUNE_BATCH:
                return counts

    _PRUNE_CLOSED = ("DELETE FROM pull_findings WHERE (repo, number) IN (SELECT repo, number FROM pull_findings"
                     " WHERE closed_at <= %s LIMIT %s)")


