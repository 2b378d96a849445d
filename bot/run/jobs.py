"""In-process job runner for the SQLite store: work runs after the webhook is answered.

Jobs live in the store, not in memory: a queued job survives a crash and is picked up by
:meth:`LocalJobs.start` on the next boot. Jobs of one thread (an issue or PR) run one at a time,
in arrival order; different threads run concurrently up to a limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from bot.github.client import TokenRefused, Uninstalled
from bot.github.errors import explain
from bot.run.periodic import every
from bot.store import Job, Store, StoreUnavailable
from bot.store.run_format import StoredRunError

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[None]]
# Told when a job ends for good without success, and when one succeeds (to tidy a note it left).
OnFailed = Callable[[Job, "Outcome"], Awaitable[None]]
OnDone = Callable[[Job], Awaitable[None]]

# A failed job is tried again: GitHub or the model may be down for minutes, and every write is
# idempotent by marker, so a retry resumes the run where it stopped. Then it stays failed.
MAX_ATTEMPTS = 6
# A 404 may be replication lag (a thing the bot just created, not yet readable everywhere) and the token
# request's 404 an installation that is not yet everywhere: a few tries, then it is what it says.
NOT_FOUND_ATTEMPTS = 3


# Exceptions without an HTTP status that are outages. Any other (a KeyError, a TypeError) is a bug: retrying it
# for half an hour would only keep the thread waiting; it fails at once and the thread is told.
OUTAGES = (asyncio.TimeoutError, TimeoutError, aiohttp.ClientError, OSError, StoreUnavailable)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do with a failed job: try again in ``retry_in`` seconds, or give up (None). ``tell``: whether a
    person on the thread should hear of it (nobody can be told when the App was uninstalled)."""

    retry_in: float | None
    reason: str  # for operators: the exception in one line
    tell: bool = True
    cause: str = ""  # for a person: what failed, in words
    hint: str = ""  # for a person: what would fix it, where known
    retry: bool = True  # whether running it again can help (a run whose stored state cannot be read: it cannot)


def _rate_limited(exc: BaseException) -> bool:
    headers = getattr(exc, "headers", None) or {}
    return (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers
            or "rate limit" in str(exc).lower())


def transient(exc: BaseException) -> bool:
    """Whether trying again can help: an outage or a rate limit can pass, a refusal (a 4xx) will not.

    401 passes too (the client already retried once with a fresh token; a key rotation can take a moment);
    a 404 is judged with its attempt count in :func:`judge`."""
    if isinstance(exc, (Uninstalled, TokenRefused)):
        return True
    status = getattr(exc, "status_code", None)
    if status is None:  # a timeout, a dropped connection, the store: outages; anything else is a bug
        return isinstance(exc, OUTAGES)
    status = int(status)
    return status >= 500 or status in (401, 404, 429) or (status == 403 and _rate_limited(exc))


def judge(exc: BaseException, attempts: int, base: float) -> Outcome:
    """Retry (with backoff) what may pass, a bounded number of times; give up at once on the rest."""
    cause, hint = explain(exc)
    reason = f"{type(exc).__name__}: {cause}"[:2000]  # (cause is redacted and printable: it is stored and shown)
    limit = NOT_FOUND_ATTEMPTS if isinstance(exc, Uninstalled) or getattr(exc, "status_code", None) == 404 \
        else MAX_ATTEMPTS
    delay = retry_delay(attempts, base, limit) if transient(exc) else None
    return Outcome(delay, reason, tell=not isinstance(exc, Uninstalled), cause=cause, hint=hint,
                   retry=not isinstance(exc, StoredRunError))


def retry_delay(attempt: int, base: float, limit: int = MAX_ATTEMPTS) -> float | None:
    """Seconds before attempt ``attempt + 1`` after ``attempt`` failed (base, x4 each time, at most an
    hour), or None when the job has had its ``limit`` attempts."""
    if attempt >= limit:
        return None
    return min(base * 4.0 ** (attempt - 1), 3600.0)


# Under a burst of deliveries the webhook comes first: a job claimed now takes the event loop from answers GitHub
# waits for (it gives up after 10 s), while the job itself can wait. A burst: this many deliveries (kicks) in a
# window of BURST_WINDOW seconds. A job waits for it to pass at most YIELD_MAX: a flood that never ends still
# has its jobs run, a few a second.
BURST = 20
BURST_WINDOW = 0.1
YIELD_MAX = 2.0
YIELD_STEP = 0.02


@dataclass
class Arrivals:
    """Kicks counted in windows of BURST_WINDOW seconds: the window now and the one before it."""

    clock: Callable[[], float]
    start: float = float("-inf")
    count: int = 0
    before: int = 0

    def note(self) -> None:
        now = self.clock()
        if now - self.start >= BURST_WINDOW:
            self.before = self.count if now - self.start < 2 * BURST_WINDOW else 0
            self.start, self.count = now, 0
        self.count += 1

    def burst(self) -> bool:
        age = self.clock() - self.start
        return (age < BURST_WINDOW and max(self.count, self.before) >= BURST) or (
            age < 2 * BURST_WINDOW and self.count >= BURST)


class LocalJobs:
    def __init__(self, store: Store, handler: Handler, *, concurrency: int = 8, retry_base: float = 5.0,
                 on_failed: OnFailed | None = None, on_done: OnDone | None = None, poll: float = 5.0,
                 clock: Callable[[], float] | None = None) -> None:
        self.store = store
        self.clock = clock or time.monotonic
        self.arrivals = Arrivals(self.clock)
        self.poll = poll
        self._poller: asyncio.Task[None] | None = None
        self.handler = handler
        self.retry_base = retry_base
        self.on_failed, self.on_done = on_failed, on_done
        self._timers: set[asyncio.TimerHandle] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._wakeups: dict[str, int] = {}  # kicks per thread, so a kick during a claim is not lost
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Resume what a previous process left queued or running, and look for work queued from outside."""
        for thread in await self.store.recover():
            self.kick(thread, delivered=False)
        self._poller = asyncio.create_task(every(self.poll, "job poll", self._poll_once), name="jobs:poll")

    async def _poll_once(self) -> None:
        """Jobs queued by another process (``python -m bot jobs retry``) or whose retry timer was lost."""
        for thread in await self.store.queued_threads():
            if thread not in self._drainers:
                self.kick(thread, delivered=False)

    def kick(self, thread: str, *, delivered: bool = True) -> None:
        """A job for ``thread`` was enqueued: make sure someone is draining that thread. ``delivered``: by a
        delivery the webhook just took (counted for bursts), not by recovery, the poll or a retry's timer."""
        if delivered:
            self.arrivals.note()
        self._wakeups[thread] = self._wakeups.get(thread, 0) + 1
        if thread in self._drainers:
            return
        self._idle.clear()
        task = asyncio.create_task(self._drain(thread), name=f"jobs:{thread}")
        self._drainers[thread] = task

    async def _drain(self, thread: str) -> None:
        try:
            while True:
                async with self._slots:
                    await self._after_burst()
                    seen = self._wakeups.get(thread, 0)
                    job = await self.store.claim_job(thread)
                    if job is None:
                        if self._wakeups.get(thread, 0) == seen:
                            return
                        continue
                    await self._run(job)
        except Exception:  # the store failed: the job stays queued/running and is recovered on restart
            log.exception("job runner for %s stopped", thread)
        finally:
            self._drainers.pop(thread, None)
            self._wakeups.pop(thread, None)
            if not self._drainers and not self._timers:
                self._idle.set()

    async def _after_burst(self) -> None:
        """Let a burst of deliveries be answered before a job is claimed (at most YIELD_MAX)."""
        deadline = self.clock() + YIELD_MAX
        while self.arrivals.burst() and self.clock() < deadline:
            await asyncio.sleep(YIELD_STEP)

    async def _run(self, job: Job) -> None:
        try:
            await self.handler(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("job %s traceback", job.id, exc_info=True)
            outcome = judge(exc, job.attempts, self.retry_base)
            if outcome.retry_in is None:
                # One line for operators; the traceback only at DEBUG, since most failures are GitHub's answers.
                log.error("job %s (delivery %s) failed after %d attempt(s), not retried: %s", job.id,
                          job.delivery_id, job.attempts, outcome.reason)
                await self._recorded(lambda: self.store.finish_job(job.id, error=outcome.reason))
                if self.on_failed is not None:
                    await self.on_failed(job, outcome)
                return
            log.warning("job %s (delivery %s) failed (attempt %d), retrying in %.0fs: %s", job.id, job.delivery_id,
                        job.attempts, outcome.retry_in, outcome.reason)
            await self._recorded(lambda: self.store.retry_job(job.id, after=outcome.retry_in or 0.0,
                                                             error=outcome.reason))
            self._later(outcome.retry_in, job.thread)
        else:
            await self._recorded(lambda: self.store.finish_job(job.id))
            if self.on_done is not None:
                await self.on_done(job)

    async def _recorded(self, write: Callable[[], Awaitable[None]], attempts: int = 6) -> None:
        """Record a job's outcome through a brief store outage: a job left 'running' would hold up its
        thread until the process restarts (start-up puts running jobs back in the queue)."""
        for attempt in range(attempts):
            try:
                await write()
                return
            except StoreUnavailable:
                if attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.2 * 2 ** attempt)

    def _later(self, delay: float, thread: str) -> None:
        self._idle.clear()  # a retry is pending: the runner is not idle yet
        def fire() -> None:
            self._timers.discard(timer)
            self.kick(thread, delivered=False)

        timer = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(timer)

    async def drained(self, timeout: float | None = None) -> None:
        """Wait until no job is queued or running (replay and tests)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = list(self._drainers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
