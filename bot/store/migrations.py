"""The schema, as an append-only list of migrations: never change what one that has shipped makes, add another.

The SQL is kept to what SQLite and PostgreSQL both accept, so one list serves both stores. A step that
SQL cannot express (a change of the JSON a column holds) is a :class:`RowMigration`: Python run by each
store over every row of one table, in the same transaction as the rest of its version. An index on a table
that may be large is an :class:`Index`: PostgreSQL builds it without blocking writes.

Each store records a version by its number alone (``schema_migrations``: no checksum of the text), so *how* a
shipped step is run may change where what it makes stays the same: migration 12 became an :class:`Index` (the
same index, built ``CONCURRENTLY`` on PostgreSQL); installs that ran it as plain SQL have it and skip it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.store.run_format import upgrade_column

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RowMigration:
    """Every row of ``table`` gets its ``column`` replaced by ``convert(key, text)``; None leaves the row (it is
    current already). ``convert`` raises ValueError for a row it cannot convert: that row is left as it is, and
    logged and counted by :class:`RowPass` (the version is applied all the same: one bad row must not stop
    the service from starting).

    Rows are read in pages of ``batch`` in key order, so a large table is never held in memory at once."""

    table: str
    key: str
    column: str
    convert: Callable[[str, str], str | None]
    batch: int = 500

    def page_sql(self, param: str) -> str:
        """The next page: rows with a key after the last one seen (``param``: the driver's placeholder)."""
        return (f"SELECT {self.key} AS k, {self.column} AS v FROM {self.table} WHERE {self.key} > {param}"
                f" ORDER BY {self.key} LIMIT {self.batch}")

    def update_sql(self, param: str) -> str:
        return f"UPDATE {self.table} SET {self.column} = {param} WHERE {self.key} = {param}"


@dataclass
class RowPass:
    """One pass of a :class:`RowMigration` over its table, as each store runs it: :meth:`convert` per row, then
    :meth:`finish`, which says at ERROR how many rows were left unconverted (they fail when they are read)."""

    step: RowMigration
    left: int = 0
    keys: list[str] = field(default_factory=list)  # the first of them, for the operator to look at
    shown: int = 20

    def convert(self, key: str, text: str) -> str | None:
        try:
            return self.step.convert(key, text)
        except ValueError as exc:
            log.warning("%s.%s of %s left as it was: %s", self.step.table, self.step.column, key, exc)
            self.left += 1
            if len(self.keys) < self.shown:
                self.keys.append(key)
            return None

    def finish(self) -> None:
        if self.left:
            more = f" and {self.left - len(self.keys)} more" if self.left > len(self.keys) else ""
            log.error("migration of %s.%s: %d row(s) left unconverted (each logged above; reading one fails "
                      "the same way): %s%s", self.step.table, self.step.column, self.left, ", ".join(self.keys),
                      more)


@dataclass(frozen=True)
class Index:
    """``CREATE INDEX IF NOT EXISTS name ON table (columns)``. On PostgreSQL a plain build locks the table's writes
    for as long as it takes, so it is built ``CONCURRENTLY``, which cannot run in a transaction: the store runs it
    alone and records the version after it (bot/store/postgres.py); a build that died leaves an INVALID index
    behind, which the next start drops and builds again. SQLite builds it in the version's transaction."""

    name: str
    table: str
    columns: str

    def sql(self, *, concurrently: bool = False) -> str:
        how = "CONCURRENTLY " if concurrently else ""
        return f"CREATE INDEX {how}IF NOT EXISTS {self.name} ON {self.table} ({self.columns})"


MIGRATIONS: list[str | RowMigration | Index] = [
    # 1: deliveries as received, and the job that processes each (one per delivery).
    """
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        action TEXT NOT NULL,
        installation_id BIGINT,
        repo TEXT NOT NULL,
        thread TEXT NOT NULL,
        received_at DOUBLE PRECISION NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        delivery_id TEXT NOT NULL UNIQUE REFERENCES deliveries(id),
        thread TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX jobs_thread_state ON jobs (thread, state, id);
    CREATE INDEX jobs_state ON jobs (state, id);
    """,
    # 2: what the bot created on GitHub, by hidden marker, so a retried step edits instead of posting twice.
    """
    CREATE TABLE posted (
        marker TEXT PRIMARY KEY,
        repo TEXT NOT NULL,
        kind TEXT NOT NULL,
        github_id BIGINT NOT NULL,
        number INTEGER,
        url TEXT,
        created_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 3: workflow runs (the engine's record, resumable), their steps' results, and model usage.
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        thread TEXT NOT NULL,
        repo TEXT NOT NULL,
        number INTEGER,
        installation_id BIGINT,
        workflow TEXT,
        state TEXT NOT NULL,
        data TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX runs_thread ON runs (thread, created_at);
    CREATE INDEX runs_state ON runs (state);
    CREATE TABLE steps (
        run_id TEXT NOT NULL REFERENCES runs(id),
        step_id TEXT NOT NULL,
        iteration INTEGER NOT NULL,
        status TEXT NOT NULL,
        output TEXT,
        input_tokens BIGINT NOT NULL DEFAULT 0,
        output_tokens BIGINT NOT NULL DEFAULT 0,
        cache_read_tokens BIGINT NOT NULL DEFAULT 0,
        cache_write_tokens BIGINT NOT NULL DEFAULT 0,
        cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (run_id, step_id, iteration)
    );
    CREATE TABLE usage_daily (
        installation_id BIGINT NOT NULL,
        day TEXT NOT NULL,
        tokens BIGINT NOT NULL DEFAULT 0,
        cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0,
        PRIMARY KEY (installation_id, day)
    );
    """,
    # 4: a failed job is retried later (GitHub or the model may be down for minutes): not before run_after.
    """
    ALTER TABLE jobs ADD COLUMN run_after DOUBLE PRECISION NOT NULL DEFAULT 0;
    """,
    # 5: never silent, nothing lost. A repository's last config that parsed (an unreadable one never loosens
    # the bot); when a thread was told of a job that had not yet shown anything; redeliveries the sweep asked
    # GitHub for (never twice); a row /healthz writes to prove the store takes writes.
    """
    CREATE TABLE repo_configs (
        repo TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        text TEXT NOT NULL,
        saved_at DOUBLE PRECISION NOT NULL
    );
    ALTER TABLE jobs ADD COLUMN noted_at DOUBLE PRECISION;
    CREATE TABLE redeliveries (
        guid TEXT PRIMARY KEY,
        delivery_id BIGINT NOT NULL,
        requested_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE health_probe (
        id INTEGER PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL,
        pad TEXT NOT NULL
    );
    """,
    # 6: retention (bot/run/retention.py) replaces the payload of a finished delivery with '{}' after some days and
    # keeps the row (its id is how a redelivery is recognised). This index holds only the payloads not yet
    # pruned, so the hourly pass reads those, not every delivery ever received.
    """
    CREATE INDEX deliveries_unpruned ON deliveries (received_at) WHERE payload <> '{}';
    """,
    # 7: limits shared by every worker. Window counters (command replies per person and repository, GitHub
    # writes per installation): one row per event, read per key. Token spending per key (a run, an
    # installation's day, a repository's day): a running total, and each model call's reservation, so a call
    # reserves before it starts and settles to what it really used.
    """
    CREATE TABLE limit_events (
        key TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX limit_events_key ON limit_events (key, at);
    CREATE TABLE spend_totals (
        key TEXT PRIMARY KEY,
        total BIGINT NOT NULL
    );
    CREATE TABLE spend_reservations (
        reservation TEXT NOT NULL,
        key TEXT NOT NULL,
        amount BIGINT NOT NULL,
        settled INTEGER NOT NULL DEFAULT 0,
        at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (reservation, key)
    );
    """,
    # 8: every stored run's data in format version 2 (bot/store/run_format.py): all keys present, the run
    # context with from_fork and base_sha whatever started the run.
    RowMigration(table="runs", key="id", column="data", convert=upgrade_column),
    # 9: each step's provenance (issue 17): the agent, its tier and model id, hashes of its prompt and of the
    # team's rules, and the head it read, as JSON; NULL for steps recorded before.
    "ALTER TABLE steps ADD COLUMN provenance TEXT",
    # 10: converging reviews (issue 17): each pull request's findings as last reviewed, one JSON object by finding
    # id, with the head SHA they were judged at; read and written whole by the one job a pull request has at a
    # time, so the findings and their head never disagree.
    """
    CREATE TABLE pull_findings (
        repo TEXT NOT NULL,
        number INTEGER NOT NULL,
        sha TEXT NOT NULL,
        findings TEXT NOT NULL,
        saved_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (repo, number)
    );
    """,
    # 11: dashboard refreshes put off by the one-edit-a-minute window (bot/run/dashboard.py), per repository, so a
    # restart does not lose them: the runtime's periodic pass makes them. ``marks`` counts each time one was put
    # off, so a refresh clears only the mark it made (a change put off while it edited stays due).
    """
    CREATE TABLE dashboard_due (
        repo TEXT PRIMARY KEY,
        installation_id BIGINT NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        marks BIGINT NOT NULL DEFAULT 1
    );
    """,
    # 12: the dashboard's list of a repository's active runs (``active_runs``: repo, installation, newest first) is
    # read on every refresh; runs are kept for good, so without this index each read scans every run ever made.
    # (Shipped as plain SQL making the same index; an Index now, so PostgreSQL never stops run writes to build it.)
    Index(name="runs_repo_created", table="runs", columns="repo, installation_id, created_at"),
    # 13: tech debt about to be filed (bot/run/merged.py): under the finding's private marker (never posted,
    # unkeyed), the public marker its issue will carry, written before the issue is created, and the claim of the
    # one job filing it (``claimed_at``: two merges of the same finding at once file one issue; 0 once let go). A
    # retry after a crash looks for the issue under the marker noted, and files under the key of now if none
    # carries it. ``store_notes``: a one-off pass done for this install (the backfill of private markers).
    """
    CREATE TABLE debt_filings (
        filed TEXT PRIMARY KEY,
        public TEXT NOT NULL,
        claimed_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE store_notes (
        name TEXT PRIMARY KEY,
        at DOUBLE PRECISION NOT NULL
    );
    """,
    # 14: when a pull request was closed without a merge (NULL while open; cleared when it is reopened): retention
    # lets its findings go 90 days after, open ones too, since the merge that would file them is not coming.
    # ``state_at``: GitHub's updated_at of the close or reopen last applied, so one delivered late (a redelivery, a
    # retried job) never undoes a later one.
    """
    ALTER TABLE pull_findings ADD COLUMN closed_at DOUBLE PRECISION;
    ALTER TABLE pull_findings ADD COLUMN state_at DOUBLE PRECISION;
    """,
    # 15: retention's pass over closed pull requests' findings (``closed_at <= ...``) reads this, not every row.
    Index(name="pull_findings_closed", table="pull_findings", columns="closed_at"),
]
