"""The SQLite store reads only its lane's own shut-down signal (``LaneClosed``) as "the store is closed": a
RuntimeError raised inside a store call (a bug, or sqlite raising one) reaches the caller as itself."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from bot.store import StoreUnavailable
from bot.store.lane import Lane, LaneClosed
from bot.store.sqlite import SQLiteStore


@pytest.fixture
def store(sqlite_store: SQLiteStore) -> SQLiteStore:
    return sqlite_store


def _bug(db: Any) -> None:
    raise RuntimeError("a bug inside the store call")


@pytest.mark.parametrize("way", ["_run", "_run_hook"])
async def test_a_runtime_error_inside_a_store_call_is_itself_not_store_closed(store: SQLiteStore, way: str) -> None:
    with pytest.raises(RuntimeError, match="a bug inside the store call") as got:
        await asyncio.wait_for(getattr(store, way)(_bug), 5)
    assert not isinstance(got.value, (StoreUnavailable, LaneClosed))
    assert await asyncio.wait_for(store.schema_version(), 5) > 0  # the store is open and answers still


async def test_the_lanes_shut_down_is_the_store_closed(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    await store.open()
    try:
        store._pool.shutdown()  # the connection is still there: only the lane says closed
        with pytest.raises(StoreUnavailable, match="store is closed") as got:
            await asyncio.wait_for(store._run(lambda db: 1), 5)
        assert isinstance(got.value.__cause__, LaneClosed)
    finally:  # close() would ask the shut lane: each connection closed here, none left to the collector
        await asyncio.wait_for(store._hook_pool.run(lambda: store._shut("_hook")), 5)
        store._hook_pool.shutdown()
        store._shut("_db")  # its lane is shut: closed from here (the connection is not bound to a thread)
        assert store._db is None and store._hook is None


async def test_a_closed_store_says_so(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    await store.open()
    await store.close()
    for call in (store.schema_version(), store._run(lambda db: 1), store._run_hook(lambda db: 1)):
        with pytest.raises(StoreUnavailable, match="store is closed"):
            await asyncio.wait_for(call, 5)


async def test_a_thread_that_cannot_start_is_not_reported_as_a_closed_store(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An outage (StoreUnavailable: /healthz 503, the job retried), named as what it is, not "closed"; and the
    store answers once a thread can start again."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    try:
        with monkeypatch.context() as m:
            m.setattr(threading.Thread, "start",
                      lambda self: (_ for _ in ()).throw(RuntimeError("can't start new thread")))
            for way in ("_run", "_run_hook"):
                with pytest.raises(StoreUnavailable, match="^the store's thread cannot start: can't start new thread$") \
                        as got:
                    await getattr(store, way)(lambda db: 1)
                assert "closed" not in str(got.value) and not isinstance(got.value.__cause__, LaneClosed)
                assert isinstance(got.value.__cause__, RuntimeError)
        await asyncio.wait_for(store.open(), 5)  # threads start again: the lanes were not left waiting
        assert await asyncio.wait_for(store._run(lambda db: 1), 5) == 1
    finally:
        await store.close()


async def test_the_lane_says_shut_down_with_its_own_error_and_passes_a_calls_runtime_error_on() -> None:
    lane = Lane("t")
    try:
        with pytest.raises(RuntimeError, match="a bug inside") as got:
            await asyncio.wait_for(lane.run(lambda: _bug(None)), 5)
        assert not isinstance(got.value, LaneClosed)
    finally:
        lane.shutdown()
    with pytest.raises(LaneClosed, match="shut down"):
        lane.run(lambda: 0)
    assert issubclass(LaneClosed, RuntimeError)  # callers that caught RuntimeError still catch it


async def test_only_the_lanes_refusal_of_this_call_means_closed_not_a_lane_closed_raised_inside_it(
        store: SQLiteStore) -> None:
    """Another lane's shut-down met inside a call (a bug) is that error: the store is open and says so."""
    def inner(db: Any) -> None:
        raise LaneClosed("lane other is shut down")
    with pytest.raises(LaneClosed):
        await asyncio.wait_for(store._run(inner), 5)
    assert await asyncio.wait_for(store._run(lambda db: 1), 5) == 1
