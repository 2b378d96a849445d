"""While a window has room, a run's writes ask the store for their slots side by side, not one after another behind
the pacer's lock (issue 16: 200 runs' writes waited 0.4-1 s each for the store's answers to the writes before
them); once one finds a window full, the writes queue at the lock in arrival order, as before."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bot.github.pacing import LocalSlots, WritePacer
from tests.test_pacing import VirtualTime


class SlowSlots:
    """Local slots whose answer takes a moment (a store's round trip), counting the takes in flight at once."""

    def __init__(self) -> None:
        self.inner, self.in_flight, self.most = LocalSlots(), 0, 0
        self.granted: list[int] = []

    async def take_slots(self, limits: Sequence[tuple[str, int, float]], now: float | None = None) -> float:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            return await self.inner.take_slots(limits, now)
        finally:
            self.in_flight -= 1


async def test_writes_with_room_ask_the_store_side_by_side() -> None:
    vt = VirtualTime()
    pacer = WritePacer(7, per_minute=80, per_hour=500, spacing=0.0, clock=vt.clock, sleep=vt.sleep)
    pacer.slots = slots = SlowSlots()
    await asyncio.gather(*(pacer.acquire() for _ in range(20)))
    assert slots.most == 20 and pacer.waited == 0


async def test_once_a_window_is_full_writes_queue_and_go_in_arrival_order_within_the_limits() -> None:
    vt = VirtualTime()
    pacer = WritePacer(7, per_minute=5, per_hour=500, spacing=0.0, clock=vt.clock, sleep=vt.sleep)
    pacer.slots = slots = SlowSlots()
    order: list[int] = []

    async def write(n: int) -> None:
        await pacer.acquire()
        order.append(n)
    tasks = []
    for n in range(12):
        tasks.append(asyncio.create_task(write(n)))
        await asyncio.sleep(0)  # each asks in turn
    await asyncio.gather(*tasks)
    assert sorted(order[:5]) == list(range(5))  # the minute's five, side by side
    assert order[5:] == list(range(5, 12))  # the rest one at a time, in arrival order
    assert pacer.waited >= 60.0 and slots.most > 1


class Gate:
    """Slots that are full (a wait of 5 s) until opened; ``on_grant`` is called at each slot given."""

    def __init__(self) -> None:
        self.full, self.on_grant = True, lambda: None

    async def take_slots(self, limits: Sequence[tuple[str, int, float]], now: float | None = None) -> float:
        await asyncio.sleep(0)
        if self.full:
            return 5.0
        self.on_grant()
        return 0.0


async def test_a_write_that_comes_as_the_window_opens_goes_after_those_that_queued_for_it() -> None:
    vt = VirtualTime()
    pacer = WritePacer(7, spacing=0.0, clock=vt.clock, sleep=vt.sleep)
    pacer.slots = gate = Gate()
    order: list[str] = []
    tasks: list[asyncio.Task[None]] = []

    async def write(name: str) -> None:
        await pacer.acquire()
        order.append(name)
    vt.awake.clear()  # the first write sleeps until the scene is set
    tasks.append(asyncio.create_task(write("first")))
    await asyncio.sleep(0.01)
    tasks.append(asyncio.create_task(write("queued")))
    await asyncio.sleep(0.01)

    def late() -> None:  # a write that comes just as the first one finds room
        gate.on_grant = lambda: None
        tasks.append(asyncio.create_task(write("late")))
    gate.on_grant, gate.full = late, False
    vt.awake.set()
    while len(tasks) < 3 or not all(t.done() for t in tasks):
        await asyncio.sleep(0.001)
    assert order == ["first", "queued", "late"]
