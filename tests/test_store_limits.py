"""The store's shared limits (window counters, token reservations), on every backend, and shared by two Store
objects on one database as two workers would share it. PostgreSQL skips where no server is running."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.store import SQLiteStore
from bot.store.limits import window_wait
from tests.test_store import store  # noqa: F401  (the parametrized fixture: SQLite and PostgreSQL)


@pytest.fixture(params=["sqlite", "postgres"])
async def two(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Any, Any]]:
    """Two stores on one database: two workers."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
        async with _opened(SQLiteStore(url), SQLiteStore(url)) as pair:
            yield pair
        return
    from bot.store.postgres import PostgresStore
    from tests.test_postgres_store import fresh_schema

    async with fresh_schema() as url, _opened(PostgresStore(url), PostgresStore(url)) as pair:
        yield pair


@contextlib.asynccontextmanager
async def _opened(a: Any, b: Any) -> AsyncIterator[tuple[Any, Any]]:
    """Both stores opened, and closed again afterwards."""
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def test_the_wait_is_until_the_oldest_event_that_must_leave_has_left() -> None:
    limits = [("k", 3, 60.0)]
    assert window_wait(limits, {"k": [10.0, 20.0]}, 30.0) == 0.0
    assert window_wait(limits, {"k": [10.0, 20.0, 25.0]}, 30.0) == 40.0  # 10 + 60 - 30
    assert window_wait(limits, {"k": [10.0, 20.0, 25.0, 28.0]}, 30.0) == 50.0  # two must leave: 20 + 60 - 30
    assert window_wait([("a", 5, 60.0), ("b", 1, 1.0)], {"b": [29.5]}, 30.0) == 0.5  # the longest wait counts
    assert window_wait([("k", 0, 60.0)], {}, 0.0) == 60.0  # a limit of nothing never fits


async def test_a_window_counter_takes_up_to_its_limit_then_says_how_long_to_wait(store: Any) -> None:
    limits = [("reply:o/r#1:ann", 5, 60.0), ("reply:o/r", 30, 3600.0)]
    assert [await store.take_slots(limits, now=100.0 + i) for i in range(5)] == [0.0] * 5
    assert await store.take_slots(limits, now=106.0) == pytest.approx(54.0)  # the first leaves at 160
    assert await store.take_slots(limits, now=160.5) == 0.0
    # a refused take records nothing: the repository's hourly counter holds the six taken, not the refusal
    others = [await store.take_slots([("reply:o/r", 30, 3600.0)], now=200.0) for _ in range(30)]
    assert others.count(0.0) == 24 and others[-1] > 0


async def test_all_or_nothing_across_keys(store: Any) -> None:
    assert await store.take_slots([("tight", 1, 60.0)], now=0.0) == 0.0
    assert await store.take_slots([("loose", 9, 60.0), ("tight", 1, 60.0)], now=1.0) > 0
    assert await store.take_slots([("loose", 1, 60.0)], now=2.0) == 0.0  # "loose" took nothing above


async def test_reservations_are_ceilings_and_settle_to_what_was_used(store: Any) -> None:
    caps = [("run:r1", 1000), ("day:7:2026-12-02", 1500)]
    assert await store.reserve("c1", 600, caps)
    assert not await store.reserve("c2", 600, caps)  # 1200 > the run's 1000
    assert await store.spent("run:r1") == 600 and await store.spent("day:7:2026-12-02") == 600
    await store.settle("c1", 250)
    assert await store.spent("run:r1") == 250
    await store.settle("c1", 999)  # settling twice changes nothing
    assert await store.spent("run:r1") == 250
    assert await store.reserve("c2", 600, caps)
    assert not await store.reserve("c3", 700, [("run:r2", 1000), ("day:7:2026-12-02", 1500)])  # the day is full
    assert await store.spent("run:r2") == 0  # all or nothing
    await store.settle("c2", 0)  # a failed call costs nothing
    assert await store.spent("day:7:2026-12-02") == 250


async def test_two_workers_never_take_more_than_the_limit_together(two: tuple[Any, Any]) -> None:
    a, b = two
    limits = [("writes:7:minute", 80, 60.0)]
    results = await asyncio.gather(*[(a if i % 2 else b).take_slots(limits, now=1000.0) for i in range(120)])
    assert results.count(0.0) == 80


async def test_two_workers_never_reserve_past_a_cap_together(two: tuple[Any, Any]) -> None:
    a, b = two
    caps = [("day:7:2026-12-02", 10_000)]
    taken = await asyncio.gather(*[(a if i % 2 else b).reserve(f"c{i}", 900, caps) for i in range(40)])
    assert taken.count(True) == 11
    assert await a.spent("day:7:2026-12-02") == 9_900
