"""Durable records: deliveries, jobs and what the bot posted."""

from __future__ import annotations

from bot.store.base import Delivery, Job, Posted, RunRecord, StepRecord, Store, StoreUnavailable
from bot.store.sqlite import SQLiteStore

__all__ = ["Delivery", "Job", "Posted", "RunRecord", "StepRecord", "Store", "StoreUnavailable", "SQLiteStore", "open_store"]


async def open_store(database_url: str) -> SQLiteStore:
    """Open (and migrate) the store named by ``DATABASE_URL``."""
    if database_url.startswith("sqlite:///"):
        store = SQLiteStore(database_url)
        await store.open()
        return store
    raise NotImplementedError("PostgreSQL support arrives with the durability work; use sqlite:/// for now")
