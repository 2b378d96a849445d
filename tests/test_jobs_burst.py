"""Under a burst of deliveries the webhook comes first: the in-process runner claims no job while deliveries
arrive faster than BURST per BURST_WINDOW, for at most YIELD_MAX, then goes on. The clock is the test's, so
what is asserted is what the runner does at each moment of it, never how long anything took."""

from __future__ import annotations

import asyncio

from bot.run import jobs as J
from bot.run.jobs import LocalJobs
from bot.store import Job
from bot.store.sqlite import SQLiteStore
from tests.test_ingress_batch import store  # noqa: F401  (a SQLite store in a temporary folder)
from tests.test_store import delivery


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def recording(store: SQLiteStore) -> tuple[LocalJobs, Clock, list[str]]:
    """A runner on the test's clock whose jobs only note their delivery ids, in the order they ran."""
    clock, ran = Clock(), []

    async def handler(job: Job) -> None:
        ran.append(job.delivery_id)
    return LocalJobs(store, handler, clock=clock), clock, ran


async def settle(rounds: int = 50) -> None:
    """Let the runner's tasks go round (each wait is one YIELD_STEP of real time at most)."""
    for _ in range(rounds):
        await asyncio.sleep(J.YIELD_STEP / 4)


async def burst_of(store: SQLiteStore, runner: LocalJobs, n: int) -> None:
    """``n`` deliveries stored, then their kicks at one moment (as the webhook's answers make them in a burst)."""
    threads = []
    for i in range(n):
        d = delivery(f"b{i}", thread=f"o/r#{i}")
        assert await store.accept_delivery(d)
        threads.append(d.thread)
    for thread in threads:
        runner.kick(thread)


async def test_no_job_is_claimed_during_a_burst_and_all_run_once_it_passes(store: SQLiteStore) -> None:
    runner, clock, ran = recording(store)
    await burst_of(store, runner, J.BURST)
    await settle()
    assert ran == [] and await store.job_states() == {"queued": J.BURST}  # not even claimed
    clock.now += 2 * J.BURST_WINDOW  # the burst is over
    await asyncio.wait_for(runner.drained(), 10)
    assert sorted(ran) == sorted(f"d-b{i}" for i in range(J.BURST))
    await runner.close()


async def test_fewer_deliveries_than_a_burst_run_at_once(store: SQLiteStore) -> None:
    runner, clock, ran = recording(store)
    await burst_of(store, runner, J.BURST - 1)
    await asyncio.wait_for(runner.drained(), 10)  # the clock never moved: no wait was needed
    assert len(ran) == J.BURST - 1
    await runner.close()


async def test_a_flood_that_never_ends_still_runs_its_jobs_after_yield_max(store: SQLiteStore) -> None:
    runner, clock, ran = recording(store)
    await burst_of(store, runner, J.BURST)
    await settle()
    assert ran == []
    for rounds in range(1, 4):  # each slot's job waited YIELD_MAX of a flood that goes on: it runs, one a slot
        clock.now += J.YIELD_MAX
        for _ in range(J.BURST):
            runner.arrivals.note()
        assert runner.arrivals.burst()
        await settle()
        assert len(ran) == min(8 * rounds, J.BURST)  # LocalJobs' default concurrency: 8 slots
    clock.now += 2 * J.BURST_WINDOW  # the flood ends: the drainers look for more, find none, and stop
    await asyncio.wait_for(runner.drained(), 10)
    await runner.close()


async def test_only_the_webhooks_kicks_count_as_arrivals(store: SQLiteStore) -> None:
    """Recovery at start-up, the poll and retry timers kick threads too: they are no burst of deliveries."""
    async def handler(job: Job) -> None:
        return None

    runner = LocalJobs(store, handler, clock=Clock())
    for i in range(J.BURST):
        runner.kick(f"o/r#{i}", delivered=False)
    assert not runner.arrivals.burst()
    for i in range(J.BURST):
        runner.kick(f"o/r#{i}")
    assert runner.arrivals.burst()
    await runner.close()
