"""The SQLite store's calls on a lane of their own (issue 16, sixth pass: ``bot/store/lane.py`` in place of a
one-thread executor): the contract the executor kept, checked on the lane and through a real SQLiteStore."""

from __future__ import annotations

import asyncio
import functools
import threading
from pathlib import Path

import pytest

from bot.store import StoreUnavailable
from bot.store.lane import Lane
from bot.store.sqlite import SQLiteStore


async def test_calls_run_in_order_one_at_a_time_on_the_lanes_own_thread() -> None:
    lane = Lane("t")
    seen: list[tuple[int, str]] = []
    running: list[int] = []

    def call(i: int) -> int:
        running.append(i)
        assert len(running) == 1, "two calls at once"
        seen.append((i, threading.current_thread().name))
        running.remove(i)
        return i * 2

    try:
        calls = [functools.partial(call, i) for i in range(50)]
        assert await asyncio.gather(*(lane.run(c) for c in calls)) == [i * 2 for i in range(50)]
    finally:
        lane.shutdown()
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"t_0"} and threading.current_thread().name != "t_0"


async def test_an_error_reaches_the_caller_and_the_lane_goes_on() -> None:
    lane = Lane("t")
    try:
        with pytest.raises(KeyError, match="gone"):
            await lane.run(lambda: dict[str, int]()["gone"])
        assert await lane.run(lambda: "next") == "next"
    finally:
        lane.shutdown()


async def test_a_call_cancelled_before_it_starts_is_not_run() -> None:
    """As the executor's future: a caller that gave up (a job cancelled, a timeout) does not get its write made
    later behind its back."""
    lane, gate, ran = Lane("t"), threading.Event(), []
    try:
        blocker = lane.run(gate.wait)
        later = asyncio.ensure_future(lane.run(lambda: ran.append("later")))
        await asyncio.sleep(0)
        later.cancel()
        gate.set()
        await blocker
        assert await lane.run(lambda: "after") == "after"
        assert ran == [] and later.cancelled()
    finally:
        lane.shutdown()


async def test_what_is_queued_runs_before_shutdown_and_nothing_after() -> None:
    lane, gate = Lane("t"), threading.Event()
    first, second = lane.run(gate.wait), lane.run(lambda: "queued")
    gate.set()
    lane.shutdown()  # waits for the thread: both calls were made
    assert await first is True and await second == "queued"
    with pytest.raises(RuntimeError, match="shut down"):
        lane.run(lambda: None)


def test_a_loop_closed_while_a_call_runs_does_not_end_the_lane() -> None:
    """The answer cannot reach a closed loop; the next loop's calls still run (a CLI command, a test)."""
    lane, gate = Lane("t"), threading.Event()
    loop = asyncio.new_event_loop()

    async def start() -> None:
        lane.run(gate.wait)

    loop.run_until_complete(start())
    loop.close()
    gate.set()
    try:
        assert asyncio.run(_one(lane)) == "still here"
    finally:
        lane.shutdown()


async def _one(lane: Lane) -> str:
    return await asyncio.wait_for(lane.run(lambda: "still here"), 5)  # a lane whose thread died never answers


async def test_a_closed_store_says_so_on_every_call(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    await store.open()
    assert await store.schema_version() > 0
    await store.close()
    # Bounded: a call queued behind the lane's end would never be answered.
    with pytest.raises(StoreUnavailable, match="closed"):
        await asyncio.wait_for(store.schema_version(), 5)
    with pytest.raises(StoreUnavailable, match="closed"):
        await asyncio.wait_for(store.load_run("r1"), 5)
