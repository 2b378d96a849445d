"""The SQLite store: one file, two connections, each on its own thread; migrations applied at start-up.

sqlite3 is synchronous; every call runs on a dedicated thread so the event loop never blocks on disk.
Jobs, runs and everything else share one connection (a long busy timeout: a job may wait its turn).
The webhook path (``accept_delivery``, ``probe_write``) has its own connection and thread with a busy
timeout under a second, counted from when the call was made: GitHub gives up on a delivery after 10 s,
so a locked file must answer 503 at once, never after waiting behind a job's longer wait. WAL mode keeps
a webhook's insert under a millisecond on ordinary disks, and readers never wait for writers. The job
queue's methods are in bot/store/sqlite_jobs.py.

Long because each write a run makes is one transaction here (its save with what it posted and the step it
finished, the shared limits, the ledger), and each needs its statements beside the others it runs with.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

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
from bot.store.intake import HOOK_BUDGET
from bot.store.lane import Lane, LaneClosed
from bot.store.limits import Cap, Limit, fits, nth_newest_wait
from bot.store.migrations import MIGRATIONS, Index, RowMigration, RowPass
from bot.store.run_format import patch_keys
from bot.store.sqlite_jobs import SQLiteJobs, rollback

T = TypeVar("T")

JOBS_BUSY_TIMEOUT = 10.0  # seconds a job's statement waits for another writer (another process, a backup)
HOOK_BUSY_TIMEOUT = HOOK_BUDGET  # seconds a delivery may wait, queued or for the lock: 503 in < 1 s
PRUNE_BATCH = 500  # rows per write transaction, so pruning never holds the lock long enough to 503 a delivery


def sqlite_path(database_url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``sqlite:///:memory:`` → a path."""
    if not database_url.startswith("sqlite:///"):
        raise ValueError("not a sqlite:/// URL")
    return database_url[len("sqlite:///"):] or ":memory:"


def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


def _rewrite_rows(db: sqlite3.Connection, step: RowMigration) -> None:
    """A Python migration step, page by page, inside the caller's transaction."""
    last, tally = "", RowPass(step)
    while rows := db.execute(step.page_sql("?"), (last,)).fetchall():
        for row in rows:
            new = tally.convert(row["k"], row["v"])
            if new is not None:
                db.execute(step.update_sql("?"), (new, row["k"]))
        last = rows[-1]["k"]
    tally.finish()


class SQLiteStore(SQLiteJobs):
    def __init__(self, database_url: str) -> None:
        self.path = sqlite_path(database_url)
        self._pool = Lane("sqlite")
        self._db: sqlite3.Connection | None = None
        # The webhook's own thread and connection; for ":memory:" (replay) both are the one of the jobs, since
        # a second connection would open a second, empty database.
        shared = self.path == ":memory:"
        self._hook_pool = self._pool if shared else Lane("sqlite-hook")
        self._hook: sqlite3.Connection | None = None
        self._hook_timeout_ms = -1  # the busy timeout last set on the webhook's connection (-1: its own)

    async def _call(self, pool: Lane, call: Callable[[], T]) -> T:
        try:
            future = pool.run(call)
        except LaneClosed as exc:  # the lane's own refusal, and only it: the store is closed
            raise StoreUnavailable("store is closed") from exc
        except RuntimeError as exc:  # its thread could not start (no threads left): an outage, retried, not a bug
            raise StoreUnavailable(f"the store's thread cannot start: {exc}") from exc
        return await future  # what the call raised, as it raised it: a RuntimeError there is a bug, not "closed"

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on the jobs' connection and thread."""
        def call() -> T:
            if self._db is None:
                raise StoreUnavailable("store is closed")
            try:
                return fn(self._db)
            except sqlite3.OperationalError as exc:  # locked, disk full, I/O error: the store cannot take it now
                raise StoreUnavailable(str(exc)) from exc
        return await self._call(self._pool, call)

    async def _run_hook(self, fn: Callable[[sqlite3.Connection], T], deadline: float | None = None) -> T:
        """``fn`` on the webhook's connection and thread, by ``deadline`` (time.monotonic; default
        HOOK_BUSY_TIMEOUT from now): SQLite's busy wait is what is left of it when the call leaves the queue.
        """
        deadline = deadline if deadline is not None else time.monotonic() + HOOK_BUSY_TIMEOUT

        def call() -> T:
            db = self._hook
            if db is None or self._db is None:  # the store is open only while both connections are
                raise StoreUnavailable("store is closed")
            try:
                if db is not self._db:  # a shared ":memory:" connection keeps the jobs' timeout
                    # In 50 ms steps, rounded down (never past the budget): most calls find the value set
                    # already and skip a statement, and the GIL round trips each statement costs under load.
                    ms = max(0, int((deadline - time.monotonic()) * 1000)) // 50 * 50
                    if ms != self._hook_timeout_ms:
                        db.execute(f"PRAGMA busy_timeout = {ms}")
                        self._hook_timeout_ms = ms
                return fn(db)
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(str(exc)) from exc
        return await self._call(self._hook_pool, call)

    async def open(self) -> None:
        def connect() -> None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = _connect(self.path, JOBS_BUSY_TIMEOUT)
            self._db = db
            self._migrate(db)

        def connect_hook() -> None:
            self._hook = self._db if self.path == ":memory:" else _connect(self.path, HOOK_BUSY_TIMEOUT)
            self._hook_timeout_ms = -1
        try:
            await self._pool.run(connect)
            await self._hook_pool.run(connect_hook)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
        done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        for version, step in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                if isinstance(step, RowMigration):
                    _rewrite_rows(db, step)
                elif isinstance(step, Index):  # one writer at a time here: built in the version's transaction
                    db.execute(step.sql())
                else:
                    for statement in filter(str.strip, step.split(";")):
                        db.execute(statement)
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
                db.execute("COMMIT")
            except BaseException:
                rollback(db)
                raise

    def _shut(self, attr: str) -> None:
        """Close one connection; run on its own thread, where its calls look for None."""
        db = getattr(self, attr)
        if db is not None:
            db.close()
            setattr(self, attr, None)

    async def close(self) -> None:
        if self._db is None:
            return  # closed already
        if self._hook_pool is not self._pool:
            await self._hook_pool.run(lambda: self._shut("_hook"))
            self._hook_pool.shutdown()
        self._hook = None  # for ":memory:", the jobs' connection, closed next
        await self._pool.run(lambda: self._shut("_db"))
        self._pool.shutdown()

    async def schema_version(self) -> int:
        # On the webhook's thread: /healthz asks it, and must not wait behind a job waiting for a lock.
        return await self._run_hook(lambda db: db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0] or 0)

    async def probe_write(self) -> None:
        """Prove the store takes a write now, as a delivery would: a row with a few KB, committed, deleted.

        Raises StoreUnavailable saying why (the file is locked, the disk is full, ...)."""
        def tx(db: sqlite3.Connection) -> None:
            # Random bytes need fresh pages as a payload does; each statement commits on its own.
            db.execute("INSERT INTO health_probe (at, pad) VALUES (?, ?)", (time.time(), os.urandom(2048).hex()))
            db.execute("DELETE FROM health_probe")  # every row: one left by a probe that failed half-way too
        await self._run_hook(tx)

    _REMEMBER = ("INSERT INTO posted (marker, repo, kind, github_id, number, url, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                 " ON CONFLICT (marker) DO UPDATE SET github_id = excluded.github_id, url = excluded.url")

    @staticmethod
    def _posted_rows(posted: Sequence[Posted]) -> list[tuple[object, ...]]:
        now = time.time()
        return [(p.marker, p.repo, p.kind, p.github_id, p.number, p.url, now) for p in posted]

    async def remember_posted(self, p: Posted) -> None:
        rows = self._posted_rows([p])
        await self._run(lambda db: db.execute(self._REMEMBER, rows[0]))

    async def find_posted(self, marker: str) -> Posted | None:
        row = await self._run(lambda db: db.execute("SELECT * FROM posted WHERE marker = ?", (marker,)).fetchone())
        if row is None:
            return None
        return Posted(marker=row["marker"], repo=row["repo"], kind=row["kind"], github_id=row["github_id"],
                      number=row["number"], url=row["url"])

    def _along(self, db: sqlite3.Connection, along: Along, rows: list[tuple[object, ...]]) -> None:
        """Inside the caller's transaction: what a run's save writes besides the run (``rows``: along.posted's)."""
        db.executemany(self._REMEMBER, rows)
        if along.step is not None:
            self._write_step(db, along.step, along.usage_day)

    async def save_run(self, run: RunRecord, along: Along = NOTHING) -> None:
        rows = self._posted_rows(along.posted)

        def tx(db: sqlite3.Connection) -> None:
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO runs (id, thread, repo, number, installation_id, workflow, state, data, created_at,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                    " workflow = excluded.workflow, state = excluded.state, data = excluded.data,"
                    " updated_at = excluded.updated_at",
                    (run.id, run.thread, run.repo, run.number, run.installation_id, run.workflow, run.state,
                     json.dumps(run.data), now, now))
                self._along(db, along, rows)
                db.execute("COMMIT")
            finally:
                rollback(db)
        await self._run(tx)

    async def save_run_fields(self, run: RunRecord, fields: dict[str, str], along: Along = NOTHING) -> bool:
        keys = patch_keys(fields)
        # json_set, not json_patch: a merge patch deletes a key whose new value is null.
        data = "json_set(data" + ", ?, json(?)" * len(keys) + ")" if keys else "data"
        paths = [v for k in keys for v in (f'$."{k}"', fields[k])]
        rows = self._posted_rows(along.posted)

        def tx(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            try:
                try:
                    found = db.execute(f"UPDATE runs SET workflow = ?, state = ?, data = {data}, updated_at = ?"
                                       " WHERE id = ?", (run.workflow, run.state, *paths, time.time(), run.id)).rowcount
                except sqlite3.OperationalError as exc:
                    if "JSON" not in str(exc):
                        raise
                    # SQLite's json() refuses what json.dumps may write (NaN, Infinity): the caller saves it whole.
                    return False
                if found == 0:
                    return False  # no such row: nothing written (the rollback below), ``along`` neither
                self._along(db, along, rows)
                db.execute("COMMIT")
                return True
            finally:
                rollback(db)
        return await self._run(tx)

    async def load_run(self, run_id: str) -> RunRecord | None:
        row = await self._run(lambda db: db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone())
        return RunRecord.from_row(row)

    async def active_run(self, thread: str) -> RunRecord | None:
        finals = tuple(sorted(FINAL_STATES))
        row = await self._run(lambda db: db.execute(
            f"SELECT * FROM runs WHERE thread = ? AND state NOT IN ({', '.join('?' * len(finals))})"
            " ORDER BY created_at DESC LIMIT 1", (thread, *finals)).fetchone())
        return RunRecord.from_row(row)

    async def active_runs(self, repo: str, installation_id: int, limit: int = 100) -> list[RunRecord]:
        finals = tuple(sorted(FINAL_STATES))
        rows = await self._run(lambda db: db.execute(
            f"SELECT * FROM runs WHERE repo = ? AND installation_id = ? AND state NOT IN ({', '.join('?' * len(finals))})"
            " ORDER BY created_at DESC LIMIT ?", (repo, installation_id, *finals, limit)).fetchall())
        return [r for r in map(RunRecord.from_row, rows) if r is not None]

    async def run_states(self) -> dict[str, int]:
        return await self._run(
            lambda db: {r[0]: r[1] for r in db.execute("SELECT state, COUNT(*) FROM runs GROUP BY state")})

    async def save_step(self, step: StepRecord, usage_day: tuple[int, str] | None = None) -> None:

        def tx(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                self._write_step(db, step, usage_day)
                db.execute("COMMIT")
            finally:
                rollback(db)
        await self._run(tx)

    def _write_step(self, db: sqlite3.Connection, step: StepRecord, usage_day: tuple[int, str] | None) -> None:
        db.execute(
            "INSERT INTO steps (run_id, step_id, iteration, status, output, input_tokens, output_tokens,"
            " cache_read_tokens, cache_write_tokens, cost_usd, provenance, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, step_id, iteration) DO UPDATE SET status = excluded.status,"
            " output = excluded.output, input_tokens = excluded.input_tokens,"
            " output_tokens = excluded.output_tokens, cache_read_tokens = excluded.cache_read_tokens,"
            " cache_write_tokens = excluded.cache_write_tokens, cost_usd = excluded.cost_usd,"
            " provenance = excluded.provenance, updated_at = excluded.updated_at",
            (step.run_id, step.step_id, step.iteration, step.status,
             None if step.output is None else json.dumps(step.output), step.input_tokens, step.output_tokens,
             step.cache_read_tokens, step.cache_write_tokens, step.cost_usd,
             None if step.provenance is None else json.dumps(step.provenance), time.time()))
        if usage_day is not None:
            self._add_usage(db, *usage_day, step.tokens, step.cost_usd)

    async def steps_of(self, run_id: str) -> list[StepRecord]:
        rows = await self._run(lambda db: db.execute(
            "SELECT * FROM steps WHERE run_id = ? ORDER BY updated_at, step_id, iteration", (run_id,)).fetchall())
        return [StepRecord.from_row(r) for r in rows]

    async def add_usage(self, installation_id: int, day: str, tokens: int, cost_usd: float) -> None:
        await self._run(lambda db: self._add_usage(db, installation_id, day, tokens, cost_usd))

    @staticmethod
    def _add_usage(db: sqlite3.Connection, installation_id: int, day: str, tokens: int, cost_usd: float) -> None:
        db.execute("INSERT INTO usage_daily (installation_id, day, tokens, cost_usd) VALUES (?, ?, ?, ?)"
                   " ON CONFLICT (installation_id, day) DO UPDATE SET tokens = usage_daily.tokens + excluded.tokens,"
                   " cost_usd = usage_daily.cost_usd + excluded.cost_usd", (installation_id, day, tokens, cost_usd))

    async def usage_on(self, installation_id: int, day: str) -> int:
        row = await self._run(lambda db: db.execute(
            "SELECT tokens FROM usage_daily WHERE installation_id = ? AND day = ?", (installation_id, day)).fetchone())
        return int(row[0]) if row else 0

    # ---- shared limits (bot/store/limits.py): one write transaction each, so workers never both take the last slot
    async def take_slots(self, limits: Sequence[Limit], now: float | None = None) -> float:
        at = time.time() if now is None else now

        def take(db: sqlite3.Connection) -> float:
            db.execute("BEGIN IMMEDIATE")
            try:
                nth: dict[str, float | None] = {}
                for key, limit, window in limits:
                    db.execute("DELETE FROM limit_events WHERE key = ? AND at <= ?", (key, at - window))
                    row = db.execute("SELECT at FROM limit_events WHERE key = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
                                     (key, max(0, limit - 1))).fetchone()
                    nth[key] = row[0] if row else None
                wait = nth_newest_wait(limits, nth, at)
                if wait == 0.0:
                    db.executemany("INSERT INTO limit_events (key, at) VALUES (?, ?)", [(k, at) for k, _, _ in limits])
                db.execute("COMMIT")
                return wait
            finally:
                rollback(db)
        return await self._run(take)

    async def reserve(self, reservation: str, amount: int, caps: Sequence[Cap], now: float | None = None) -> bool:
        at = time.time() if now is None else now

        def take(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            try:
                totals = {k: self._total(db, k) for k, _ in caps}
                if not fits(caps, totals, amount):
                    return False
                for key, _ in caps:
                    db.execute("INSERT INTO spend_totals (key, total) VALUES (?, ?) ON CONFLICT (key)"
                               " DO UPDATE SET total = spend_totals.total + excluded.total", (key, amount))
                    db.execute("INSERT INTO spend_reservations (reservation, key, amount, at) VALUES (?, ?, ?, ?)",
                               (reservation, key, amount, at))
                db.execute("COMMIT")
                return True
            finally:
                rollback(db)
        return await self._run(take)

    async def settle(self, reservation: str, actual: int) -> None:
        def settle(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                for key, amount in db.execute("SELECT key, amount FROM spend_reservations WHERE reservation = ?"
                                              " AND settled = 0", (reservation,)).fetchall():
                    db.execute("UPDATE spend_totals SET total = total + ? WHERE key = ?", (actual - amount, key))
                db.execute("UPDATE spend_reservations SET amount = ?, settled = 1 WHERE reservation = ? AND settled = 0",
                           (actual, reservation))
                db.execute("COMMIT")
            finally:
                rollback(db)
        await self._run(settle)

    async def spent(self, key: str) -> int:
        return await self._run(lambda db: self._total(db, key))

    @staticmethod
    def _total(db: sqlite3.Connection, key: str) -> int:
        row = db.execute("SELECT total FROM spend_totals WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    async def save_config(self, repo: str, source: str, text: str) -> None:
        """A repository's config that parsed: what applies if a later one cannot be read."""
        await self._run(lambda db: db.execute(
            "INSERT INTO repo_configs (repo, source, text, saved_at) VALUES (?, ?, ?, ?) ON CONFLICT (repo)"
            " DO UPDATE SET source = excluded.source, text = excluded.text, saved_at = excluded.saved_at",
            (repo, source, text, time.time())))

    async def last_config(self, repo: str) -> tuple[str, str] | None:
        row = await self._run(lambda db: db.execute(
            "SELECT source, text FROM repo_configs WHERE repo = ?", (repo,)).fetchone())
        return (row["source"], row["text"]) if row else None

    async def save_findings(self, found: PullFindings) -> None:
        await self._run(lambda db: db.execute(
            "INSERT INTO pull_findings (repo, number, sha, findings, saved_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT"
            " (repo, number) DO UPDATE SET sha = excluded.sha, findings = excluded.findings, saved_at = excluded.saved_at",
            (found.repo, found.number, found.sha, json.dumps(found.findings), time.time())))

    @staticmethod
    def _prune_findings(db: sqlite3.Connection, quiet: float) -> int:
        """Pull requests' findings saved before ``quiet`` with none still open (see ``none_open``), and those of
        pull requests closed unmerged before ``quiet``, open or not (no merge is coming to file them)."""
        rows = db.execute("SELECT repo, number, findings FROM pull_findings WHERE saved_at <= ?", (quiet,)).fetchall()
        gone = [(r["repo"], r["number"]) for r in rows if none_open(r["findings"])]
        db.executemany("DELETE FROM pull_findings WHERE repo = ? AND number = ? AND saved_at <= ?",
                       [(*key, quiet) for key in gone])
        closed = db.execute("DELETE FROM pull_findings WHERE closed_at <= ?", (quiet,)).rowcount
        return len(gone) + closed

    async def close_findings(self, repo: str, number: int, closed_at: float | None, *, at: float | None = None,
                             sha: str = "") -> bool:
        return bool(await self._run(lambda db: db.execute(
            CLOSE_FINDINGS, (repo, number, sha, time.time(), closed_at, at)).rowcount))

    async def findings_page(self, after: tuple[str, int] = ("", 0), limit: int = 100) -> list[PullFindings]:
        return findings_of(await self._run(lambda db: db.execute(FINDINGS_PAGE, (*after, limit)).fetchall()))

    async def claim_filing(self, filed: str, public: str, lease: float) -> str | None:
        sql = CLAIM_FILING.format(now="?")
        row = await self._run(lambda db: db.execute(sql, (filed, public, time.time(), lease)).fetchone())
        return None if row is None else str(row[0])

    async def renew_filing(self, filed: str) -> None:
        await self._run(lambda db: db.execute(RENEW_FILING.format(now="?"), (time.time(), filed)))

    async def note_filing(self, filed: str, public: str) -> None:
        await self._run(lambda db: db.execute("UPDATE debt_filings SET public = ? WHERE filed = ?", (public, filed)))

    async def release_filing(self, filed: str) -> None:
        await self._run(lambda db: db.execute("UPDATE debt_filings SET claimed_at = 0 WHERE filed = ?", (filed,)))

    async def note_done(self, name: str) -> None:
        await self._run(lambda db: db.execute(
            "INSERT INTO store_notes (name, at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, time.time())))

    async def is_done(self, name: str) -> bool:
        return await self._run(lambda db: db.execute("SELECT 1 FROM store_notes WHERE name = ?", (name,)).fetchone()
                               is not None)

    async def forget_findings(self, repo: str, number: int) -> None:
        await self._run(lambda db: db.execute("DELETE FROM pull_findings WHERE repo = ? AND number = ?",
                                              (repo, number)))

    async def load_findings(self, repo: str, number: int) -> PullFindings | None:
        row = await self._run(lambda db: db.execute(
            "SELECT sha, findings FROM pull_findings WHERE repo = ? AND number = ?", (repo, number)).fetchone())
        return PullFindings.from_row(repo, number, row)

    async def forget_posted(self, marker: str, github_id: int | None = None) -> bool:
        """The bot deleted what it had posted under ``marker`` (with ``github_id``: only while it holds that id)."""
        if github_id is None:
            return bool(await self._run(lambda db: db.execute("DELETE FROM posted WHERE marker = ?", (marker,)).rowcount))
        return bool(await self._run(lambda db: db.execute(
            "DELETE FROM posted WHERE marker = ? AND github_id = ?", (marker, github_id)).rowcount))

    _MARK_DUE = ("INSERT INTO dashboard_due (repo, installation_id, due_at) VALUES (?, ?, ?) ON CONFLICT (repo) DO"
                 " UPDATE SET installation_id = excluded.installation_id, marks = dashboard_due.marks + 1,"
                 " due_at = excluded.due_at RETURNING marks")

    async def mark_due(self, repo: str, installation_id: int, at: float) -> int:
        return int(await self._run(lambda db: db.execute(self._MARK_DUE, (repo, installation_id, at)).fetchone()[0]))

    async def clear_due(self, repo: str, marks: int | None = None) -> bool:
        if marks is None:
            return bool(await self._run(lambda db: db.execute("DELETE FROM dashboard_due WHERE repo = ?", (repo,)).rowcount))
        return bool(await self._run(lambda db: db.execute(
            "DELETE FROM dashboard_due WHERE repo = ? AND marks = ?", (repo, marks)).rowcount))

    async def due_dashboards(self, limit: int = 100) -> list[tuple[str, int]]:
        rows = await self._run(lambda db: db.execute(
            "SELECT repo, installation_id FROM dashboard_due ORDER BY due_at, repo LIMIT ?", (limit,)).fetchall())
        return [(str(r["repo"]), int(r["installation_id"])) for r in rows]

    async def posted_since(self, repo: str, number: int, since: float) -> bool:
        """Whether the bot created anything on a thread since ``since`` (unix time)."""
        row = await self._run(lambda db: db.execute(
            "SELECT 1 FROM posted WHERE repo = ? AND number = ? AND created_at >= ? LIMIT 1",
            (repo, number, since)).fetchone())
        return row is not None

    # ---- retention (bot/run/retention.py) ----------------------------------------------------------
    # Payloads of deliveries whose job is done, received before the cutoff; the row stays. The literal '{}'
    # matches migration 6's partial index, which holds only payloads not yet pruned.
    # EXISTS, not a join: the planner then starts from that index rather than from every done job.
    _PRUNE = ("UPDATE deliveries SET payload = '{}' WHERE id IN (SELECT d.id FROM deliveries d"
              " WHERE d.payload <> '{}' AND d.received_at <= ? AND EXISTS (SELECT 1 FROM jobs j"
              " WHERE j.delivery_id = d.id AND j.state IN ('done', 'dismissed')) LIMIT ?)")

    async def prune(self, older_than_seconds: float, now: float | None = None) -> dict[str, int]:
        """Forget the payloads of deliveries done and received ``older_than_seconds`` before ``now``.

        Failed, queued and running jobs keep theirs; delivery ids, runs, steps and posted records stay.
        Batches of PRUNE_BATCH, each its own short write, so a delivery never waits behind a long one."""
        cutoff = (time.time() if now is None else now) - older_than_seconds
        pruned = 0
        while True:
            n = await self._run(lambda db: db.execute(self._PRUNE, (cutoff, PRUNE_BATCH)).rowcount)
            pruned += n
            if n < PRUNE_BATCH:
                break
        asked = await self._run(lambda db: db.execute(
            "DELETE FROM redeliveries WHERE requested_at <= ?", (cutoff,)).rowcount)  # GitHub keeps 3 days
        # Window counters look back an hour at most (a day's events are plenty); settled reservations are kept
        # as long as payloads.
        events = await self._run(lambda db: db.execute(
            "DELETE FROM limit_events WHERE at <= ?", ((time.time() if now is None else now) - 86_400,)).rowcount)
        settled = await self._run(lambda db: db.execute(
            "DELETE FROM spend_reservations WHERE settled = 1 AND at <= ?", (cutoff,)).rowcount)
        quiet = (time.time() if now is None else now) - max(older_than_seconds, FINDINGS_KEEP_SECONDS)
        findings = await self._run(lambda db: self._prune_findings(db, quiet))
        return {"payloads": pruned, "redeliveries": asked, "limit_events": events, "reservations": settled,
                "pull_findings": findings}


