"""Keeps content-creating requests within GitHub's secondary rate limits, across every worker.

GitHub allows at most 80 content-creating requests a minute and 500 an hour per installation, and asks
integrators to space writes out (about a second apart) rather than burst them; bursts earn a secondary
rate limit that stalls every run of the installation. So each write first takes a slot in three windows
(the spacing, the minute, the hour) where every worker counts them: the store's ``take_slots``, or this
process's memory when there is no store. One pacer per installation per process.

Writes issued inside :func:`replying` (command replies) are low priority: each waits while a write of a run
of the same installation is waiting in this process, and, since other workers' runs cannot be seen waiting,
replies alone may fill only part of each window (REPLY_SHARE): the rest is always left for the runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

from bot.store.limits import Limit, window_wait

log = logging.getLogger(__name__)
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})
LONG_WAIT = 30.0  # a wait this long means a minute's or an hour's writes are used up: operators hear of it
Window = Limit  # (key, events allowed, seconds)
REPLY_SHARE = 0.75  # of a minute's and an hour's writes, what replies may take: runs keep the rest in every worker
_replying: ContextVar[bool] = ContextVar("triage_lead_replying", default=False)


@contextmanager
def replying() -> Iterator[None]:
    """Marks the writes issued inside (in this task and the tasks it starts) as replies: low priority."""
    token = _replying.set(True)
    try:
        yield
    finally:
        _replying.reset(token)


class Slots(Protocol):
    """Window counters (the store's, shared by all workers): record one event under every window at `now` and
    return 0.0, or record nothing and return the seconds until all would have room."""

    async def take_slots(self, limits: Sequence[Window], now: float | None = None) -> float: ...


class LocalSlots:
    """:class:`Slots` in this process's memory, for a GitHubApp without a store."""

    def __init__(self) -> None:
        self._events: dict[str, deque[float]] = {}

    async def take_slots(self, limits: Sequence[Window], now: float | None = None) -> float:
        now = time.time() if now is None else now
        for key, _, seconds in limits:
            seen = self._events.setdefault(key, deque())
            while seen and seen[0] <= now - seconds:  # aged out of the window
                seen.popleft()
        wait = window_wait(limits, self._events, now)  # the same arithmetic as the stores'
        if wait == 0.0:
            for key, _, _ in limits:
                self._events[key].append(now)
        return wait


def windows(installation_id: int | str, *, per_minute: int, per_hour: int, spacing: float) -> tuple[Window, ...]:
    """The windows one installation's writes are counted in (a spacing of 0 means none)."""
    found = ((f"writes:{installation_id}:spacing", 1, spacing), (f"writes:{installation_id}:minute", per_minute, 60.0),
             (f"writes:{installation_id}:hour", per_hour, 3600.0))
    return tuple(w for w in found if w[2] > 0)


class WritePacer:
    """One installation's writes in this process. The clock is wall time by default: the store compares the
    times of every worker's writes, and monotonic clocks of different processes do not agree."""

    def __init__(self, installation_id: int | str = 0, *, per_minute: int = 80, per_hour: int = 500,
                 spacing: float = 1.0, slots: Slots | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.installation_id, self.per = installation_id, (per_minute, per_hour)
        self.limits = windows(installation_id, per_minute=per_minute, per_hour=per_hour, spacing=spacing)
        # The same keys (every write counts in them), a lower count for a reply to be let through.
        self.reply_limits = windows(installation_id, per_minute=int(per_minute * REPLY_SHARE),
                                    per_hour=int(per_hour * REPLY_SHARE), spacing=spacing)
        self.slots: Slots = slots if slots is not None else LocalSlots()
        self._clock, self._sleep = clock, sleep
        self._lock = asyncio.Lock()  # once a window is full: one writer asks the store at a time, in arrival order
        self._normal = 0  # writes of runs (not replies) waiting here for their slot
        # Whether the last slot asked for was there. While it is, and no write waits at the lock, a run's write asks
        # the store at once, beside the others: the store takes each in a transaction of its own, so its windows hold
        # whatever the order. One at a time behind the lock, each waiting for the store's answer to the one before,
        # 200 runs' writes waited 0.4-1 s each (issue 16). Once a window is full, writes queue at the lock, in
        # arrival order, until one finds room again.
        self._open = True
        self._queued = 0  # writes and replies at the lock: while any is, a run's write queues behind them
        self._no_normal = asyncio.Event()
        self._no_normal.set()
        self.waited = 0.0  # total seconds spent waiting (for metrics and tests)

    async def acquire(self) -> None:
        """Wait until one more write fits every window; a reply also waits for the runs' writes queued here."""
        low = _replying.get()
        if not low:
            self._normal += 1
            self._no_normal.clear()
        try:
            while not await self._turn(low):
                pass
        finally:
            if not low:
                self._normal -= 1
                if not self._normal:
                    self._no_normal.set()

    async def _turn(self, low: bool) -> bool:
        """True once a slot is taken; False when a reply must step back for a run's write that came meanwhile."""
        if low:
            await self._no_normal.wait()
        elif self._open and not self._queued:  # room, and no write waits before this one
            if await self.slots.take_slots(self.limits, self._clock()) <= 0:
                return True
            self._open = False
        self._queued += 1
        try:
            async with self._lock:
                while not (low and self._normal):
                    wait = await self.slots.take_slots(self.reply_limits if low else self.limits, self._clock())
                    if wait <= 0:
                        self._open = True
                        return True
                    self._open = False
                    self.waited += wait
                    if wait >= LONG_WAIT:
                        log.warning("installation %s has used its content writes for now (GitHub allows %d a "
                                    "minute, %d an hour); the next waits %.0f s", self.installation_id, *self.per, wait)
                    await self._sleep(wait)
        finally:
            self._queued -= 1
        return False
