"""Durable records: deliveries, jobs and what the bot posted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.store.base import Delivery, Job, JobInfo, Posted, PullFindings, RunRecord, StepRecord, Store, StoreUnavailable
from bot.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from bot.store.postgres import PostgresStore

__all__ = ["Delivery", "Job", "JobInfo", "Posted", "PullFindings", "RunRecord", "StepRecord", "Store", "StoreUnavailable",
           "SQLiteStore", "PostgresStore", "open_store"]


def __getattr__(name: str) -> object:
    # PostgresStore imports psycopg; SQLite-only set-ups never pay for it.
    if name == "PostgresStore":
        from bot.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def open_store(database_url: str) -> Store:
    """Open (and migrate) the store named by ``DATABASE_URL``: ``sqlite:///...`` or ``postgresql://...``."""
    if database_url.startswith("sqlite:///"):
        store: Store = SQLiteStore(database_url)
    elif database_url.startswith(("postgresql://", "postgres://")):
        from bot.store.postgres import PostgresStore

        store = PostgresStore(database_url)
    else:
        raise ValueError("DATABASE_URL must start with sqlite:///, postgresql:// or postgres://")
    await store.open()
    return store
