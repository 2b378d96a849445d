"""Deliveries on the webhook's path, whichever store keeps them: the payload as it is read and stored, and group
commit (:class:`Intake`): deliveries that arrive together are written in one transaction, each caller still
answered on its own.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bot.store.base import Delivery, StoreUnavailable

_fast_loads: Callable[[str], Any]
try:  # orjson parses a 12 KB payload in a third of json's time
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover (json gives the same answer, slower)
    _fast_loads = json.loads


def read_payload(text: str) -> Any:
    """A payload's JSON value, as the webhook reads a body and the queue a stored payload: orjson where it can,
    json where orjson refuses what json takes (a lone surrogate escape, an integer past 64 bits)."""
    try:
        return _fast_loads(text)
    except ValueError:
        return json.loads(text)


# Deliveries per group commit at most: a batch holds the write lock for a few milliseconds, and its 8 values a
# row stay under 999, the most variables one statement may bind before SQLite 3.32.
BATCH = 100
# Deliveries waiting for a batch at most: beyond them a delivery is answered 503 at once (GitHub's redelivery
# brings it back), not queued behind more than the store can write within the webhook's budget.
MAX_PENDING = 2000
# The webhook's budget, queued and waiting for the lock together (bot.store.sqlite.HOOK_BUSY_TIMEOUT is this).
HOOK_BUDGET = 0.8


class Waiter(NamedTuple):
    """A delivery waiting for its batch: the caller's answer, and when it arrived (the clock of Intake's). A
    tuple: one is made per delivery, and a frozen dataclass's ``__init__`` costs several times more."""

    delivery: Delivery
    answer: asyncio.Future[bool]
    arrived: float


@dataclass
class Intake:
    """Group commit: deliveries waiting for the next transaction, and the task writing them (None when idle).

    Calls that arrive while a transaction is being written wait, and the next transaction takes all of them
    at once (at most BATCH), so a burst costs one lock and one commit per batch, not per delivery. Each caller
    gets its own answer; if the batch fails, every caller in it gets StoreUnavailable (a 503), none a 202.
    Time spent waiting counts against ``budget``: a caller who waited it out is answered 503 before the next
    batch is written, and past MAX_PENDING waiting a new one is answered 503 at once."""

    # One transaction: for each delivery, whether new. Its second argument: the seconds left of the budget of the
    # batch's oldest caller (what the store may wait for a lock or a connection).
    write: Callable[[list[Delivery], float], Awaitable[list[bool]]]
    pending: list[Waiter] = field(default_factory=list)
    writer: asyncio.Future[None] | None = None
    # Held by the queue's frequent writes (a batch of deliveries, a claim, a finish), whichever connection
    # makes them: a writer that finds the other connection writing waits on this lock, woken the instant it is
    # free, instead of in SQLite's busy handler, which sleeps 1, 2, 5, 10 ... 100 ms between tries (deliveries
    # waited up to a second behind the jobs' claims). SQLite's only.
    lock: threading.Lock = field(default_factory=threading.Lock)
    budget: float = HOOK_BUDGET  # seconds a caller may wait in ``pending`` before its 503
    clock: Callable[[], float] = time.monotonic

    async def accept(self, d: Delivery) -> bool:
        """``d`` committed with the next batch; False if its id was seen (before, or earlier in the batch)."""
        if len(self.pending) >= MAX_PENDING:
            raise StoreUnavailable(f"{len(self.pending)} deliveries already wait for the store")
        waiter = Waiter(d, asyncio.get_running_loop().create_future(), self.clock())
        self.pending.append(waiter)
        if self.writer is None:
            self.writer = task = asyncio.ensure_future(self._write_batches())
            task.add_done_callback(self._ended)
        return await waiter.answer

    def _ended(self, task: asyncio.Future[None]) -> None:
        """A writer cancelled before its first step never runs its ``finally``: still the writer, it would make
        every later call wait for it forever. Its waiters hear 503 as the ``finally`` would have told them."""
        if self.writer is task:
            self.writer = None
            fail(self.pending, "store is closing")
            self.pending = []

    def _expire(self) -> None:
        """Answer 503 to the callers who waited out the budget: GitHub is answered in time, not by a 202 late."""
        now = self.clock()
        late = [w for w in self.pending if now - w.arrived >= self.budget]
        if late:
            fail(late, f"waited {self.budget:.1f}s for the store")
            self.pending = [w for w in self.pending if now - w.arrived < self.budget]

    async def _write_batches(self) -> None:
        """Commit what is pending, batch after batch, until nothing is; then stop (the next call starts again).
        ``batch[0]`` is the oldest caller: ``pending`` stays in arrival order (appended as callers arrive, stamped by a
        monotonic clock, and ``_expire`` only filters it)."""
        batch: list[Waiter] = []
        try:
            while self.pending:
                self._expire()
                batch, self.pending = self.pending[:BATCH], self.pending[BATCH:]
                if not batch:
                    break
                # The oldest caller's budget is the batch's: what it has left bounds the store's own waits.
                left = max(0.0, self.budget - (self.clock() - batch[0].arrived))  # pending is in arrival order
                try:
                    fresh = await self.write([w.delivery for w in batch], left)
                except Exception as exc:  # whatever it was, nobody in the batch may hear 202
                    fail(batch, str(exc) if isinstance(exc, StoreUnavailable) else f"{type(exc).__name__}: {exc}")
                    continue
                for w, new in zip(batch, fresh, strict=True):
                    if not w.answer.done():
                        w.answer.set_result(new)
        finally:  # cancelled (the loop is closing): whoever still waits hears 503, never nothing
            self.writer = None
            fail(batch + self.pending, "store is closing")
            self.pending = []


def first_seen(deliveries: list[Delivery], seen: set[str]) -> list[bool]:
    """For each delivery, whether its id is new: not in ``seen`` (stored already) nor earlier in the list."""
    fresh, seen = [], set(seen)
    for d in deliveries:
        fresh.append(d.id not in seen)
        seen.add(d.id)  # the same id twice in one batch: the second is a duplicate too
    return fresh


def fail(waiters: list[Waiter], why: str) -> None:
    """Each caller still waiting gets its own StoreUnavailable (the webhook answers 503)."""
    for w in waiters:
        if not w.answer.done():
            w.answer.set_exception(StoreUnavailable(why))


def stored_payload(d: Delivery) -> str:
    """The payload as it is stored: the body as GitHub sent it when the webhook kept it (no re-encoding, and
    the stored bytes are the signed ones), else the parsed payload encoded again."""
    raw = getattr(d.payload, "raw", None)  # bot.web.ingress.Body's
    return raw if isinstance(raw, str) else json.dumps(d.payload)


