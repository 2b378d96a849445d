"""Writes are paced per installation: spaced out, at most 80 content-creating requests a minute and 500 an hour,
and replies wait for the runs' own writes. Here in one process (no store); across workers in test_shared_pacing.py.

Time is virtual: the pacer's clock moves only when a writer sleeps, so no test waits for real and no test
depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from bot.github.client import GitHubApp
from bot.github.pacing import WritePacer, replying
from tests.conftest import INSTALLATION, load_fixture

ISSUE = "/repos/Codertocat/Hello-World/issues/1"


class VirtualTime:
    """A clock that moves only when someone sleeps: sleeping d seconds moves it to at least now + d."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.slept = 0
        self.awake = asyncio.Event()  # a test clears it to keep sleepers asleep while it sets a scene
        self.awake.set()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        target = self.now + seconds
        self.slept += 1
        await self.awake.wait()
        await asyncio.sleep(0)  # let the other writers run, as a real sleep would
        self.now = max(self.now, target)


class Recorder:
    """Slots that record when each write was let through (the pacer's `now` of each granted take)."""

    def __init__(self, slots: Any) -> None:
        self.slots, self.granted = slots, []  # type: ignore[var-annotated]

    async def take_slots(self, limits: Sequence[tuple[str, int, float]], now: float | None = None) -> float:
        wait = await self.slots.take_slots(limits, now)
        if wait == 0.0:
            self.granted.append(now)
        return wait


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the other tasks run until `condition` holds; fail saying `what` if it does not within seconds."""
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)
    try:
        await asyncio.wait_for(poll(), 10)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def most_in_any(window: float, times: list[float]) -> int:
    """The most events in any half-open interval [t, t + window): how GitHub counts a minute or an hour."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def closest(times: list[float]) -> float:
    times = sorted(times)
    return min((b - a for a, b in zip(times, times[1:], strict=False)), default=float("inf"))


async def test_writes_through_the_client_are_spaced_reads_are_not(sandbox: Any, settings: Any) -> None:
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    vt = VirtualTime()
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(settings.with_overrides(write_spacing=1.0), session, clock=vt.clock, sleep=vt.sleep)
        gh = await app.installation(INSTALLATION)
        pacer = app.pacers[INSTALLATION]
        pacer.slots = seen = Recorder(pacer.slots)
        for _ in range(5):
            await gh.getitem(ISSUE)
        assert seen.granted == [] and vt.slept == 0  # no read went through the pacer
        await asyncio.gather(*(gh.post(f"{ISSUE}/comments", data={"body": f"n{i}"}) for i in range(5)))
    assert len(sandbox.written("comment")) == 5 and len(seen.granted) == 5
    assert closest(seen.granted) >= 1.0, seen.granted


async def test_at_most_per_minute_in_any_minute_and_per_hour_in_any_hour() -> None:
    vt = VirtualTime()
    pacer = WritePacer(7, per_minute=80, per_hour=500, spacing=0.25, clock=vt.clock, sleep=vt.sleep)
    pacer.slots = seen = Recorder(pacer.slots)
    await asyncio.gather(*(pacer.acquire() for _ in range(600)))
    assert len(seen.granted) == 600
    assert most_in_any(60, seen.granted) <= 80  # the spacing alone would let 240 through in a minute
    assert most_in_any(3600, seen.granted) <= 500  # the minute alone would let 600 through in 7.5 minutes
    assert closest(seen.granted) >= 0.25
    assert vt.now - seen.granted[0] >= 3600  # the last hundred waited for the first writes to age out


async def test_installations_are_paced_apart() -> None:
    """One installation's full minute never holds up another's writes."""
    vt = VirtualTime()
    busy = WritePacer(1, per_minute=3, spacing=0.0, clock=vt.clock, sleep=vt.sleep)
    other = WritePacer(2, per_minute=3, spacing=0.0, slots=busy.slots, clock=vt.clock, sleep=vt.sleep)
    for _ in range(3):
        await busy.acquire()
    await other.acquire()
    assert other.waited == 0 and vt.slept == 0
    await busy.acquire()
    assert busy.waited == 60.0


async def test_replies_wait_while_a_runs_writes_wait() -> None:
    """Replies queued first still go after the run's writes that came while they waited."""
    vt = VirtualTime()
    pacer = WritePacer(7, spacing=1.0, clock=vt.clock, sleep=vt.sleep)
    order: list[str] = []
    await pacer.acquire()  # the spacing window is taken: everything below has to wait

    async def write(name: str) -> None:
        await pacer.acquire()
        order.append(name)

    async def reply(name: str) -> None:
        with replying():
            await write(name)

    vt.awake.clear()
    replies = [asyncio.create_task(reply(f"reply{i}")) for i in range(5)]
    try:
        await until(lambda: vt.slept > 0, "a reply waits for its slot")  # the others queue behind it
        run = [asyncio.create_task(write(f"run{i}")) for i in range(3)]
        await until(lambda: pacer._normal >= 3, "the run's writes wait")
    finally:
        vt.awake.set()
    await asyncio.gather(*replies, *run)
    assert order == ["run0", "run1", "run2", "reply0", "reply1", "reply2", "reply3", "reply4"]


async def test_replying_is_scoped_to_its_block() -> None:
    vt = VirtualTime()
    pacer = WritePacer(7, spacing=1.0, clock=vt.clock, sleep=vt.sleep)
    with replying():
        await pacer.acquire()  # no run's write waiting: a reply goes at once
    assert pacer._normal == 0 and pacer._no_normal.is_set()
    await pacer.acquire()  # after the block: a normal write again
    assert pacer.waited == 1.0 and pacer._no_normal.is_set()


async def test_replies_alone_leave_a_share_of_every_window_to_the_runs() -> None:
    """Another worker's runs cannot be seen waiting: replies may fill only REPLY_SHARE of a minute and an hour,
    so a run's write always finds room, whichever worker the flood of replies is on."""
    vt = VirtualTime()
    replies = WritePacer(7, per_minute=80, per_hour=500, spacing=0.0, clock=vt.clock, sleep=vt.sleep)
    runs = WritePacer(7, per_minute=80, per_hour=500, spacing=0.0, slots=replies.slots, clock=vt.clock,
                      sleep=vt.sleep)  # a second worker on the same counters
    replies.slots = seen = Recorder(replies.slots)

    async def reply() -> None:
        with replying():
            await replies.acquire()
    flood = [asyncio.ensure_future(reply()) for _ in range(100)]
    await until(lambda: len(seen.granted) == 60, "sixty replies let through")
    for _ in range(20):  # the other worker's run writes at once, within the same minute
        await runs.acquire()
    assert runs.waited == 0 and most_in_any(60, seen.granted) == 60
    await asyncio.gather(*flood)
    assert most_in_any(60, seen.granted) == 60
