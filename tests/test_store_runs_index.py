"""Migration 12: the index the dashboard's ``active_runs`` read goes through (runs are kept for good, so without it
each refresh scans every run ever made), applied on both stores (PostgreSQL skips where no server is running)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.store import SQLiteStore
from tests.test_store import store  # noqa: F401  (the parametrized SQLite / PostgreSQL fixture)


async def test_the_runs_index_for_active_runs_exists_on_both_stores(store: Any) -> None:  # noqa: F811
    if isinstance(store, SQLiteStore):
        columns = await store._run(lambda db: [r[2] for r in db.execute("PRAGMA index_info(runs_repo_created)")])
        assert columns == ["repo", "installation_id", "created_at"]
    else:
        rows = await store._all("SELECT indexdef FROM pg_indexes WHERE tablename = 'runs'"
                                " AND indexname = 'runs_repo_created' AND schemaname = current_schema()")
        assert [r["indexdef"].partition(" USING ")[2] for r in rows] == ["btree (repo, installation_id, created_at)"]


async def test_sqlites_planner_reads_active_runs_through_it(tmp_path: Path) -> None:
    """The query ``active_runs`` makes (repo and installation equal, a state filter, newest first) is planned on the
    index, not as a scan of the table and a sort. (PostgreSQL plans a near-empty table as a scan whatever its
    indexes, so only the index's presence is checked there.)"""
    s = SQLiteStore(f"sqlite:///{tmp_path / 'plan.sqlite3'}")
    await s.open()
    try:
        plan = await s._run(lambda db: [r[3] for r in db.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE repo = ? AND installation_id = ? AND state NOT IN (?, ?)"
            " ORDER BY created_at DESC LIMIT ?", ("o/r", 1, "done", "failed", 100))])
    finally:
        await s.close()
    assert any("runs_repo_created" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
