"""In-process job runner for the SQLite store: work runs after the webhook is answered.

Jobs live in the store, not in memory: a queued job survives a crash and is picked up by
:meth:`LocalJobs.start` on the next boot. Jobs of one thread (an issue or PR) run one at a time,
in arrival order; different threads run concurrently up to a limit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.store import Job, Store, StoreUnavailable

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[None]]

# A failed job is tried again: GitHub or the model may be down for minutes, and every write is
# idempotent by marker, so a retry resumes the run where it stopped. Then it stays failed.
MAX_ATTEMPTS = 6


def retryable(exc: BaseException) -> bool:
    """Whether trying again can help: an outage can pass, a 4xx answer (bad key, gone repository) will not.

    Rate limits (403/429) were already waited out by the GitHub client; reaching here they count as outages.
    """
    status = getattr(exc, "status_code", None)
    return status is None or int(status) >= 500 or int(status) in (403, 429)


def retry_delay(attempt: int, base: float) -> float | None:
    """Seconds before attempt ``attempt + 1`` after ``attempt`` failed (base, x4 each time, at most an
    hour), or None when the job has had its attempts."""
    if attempt >= MAX_ATTEMPTS:
        return None
    return min(base * 4.0 ** (attempt - 1), 3600.0)


class LocalJobs:
    def __init__(self, store: Store, handler: Handler, *, concurrency: int = 8, retry_base: float = 5.0) -> None:
        self.store = store
        self.handler = handler
        self.retry_base = retry_base
        self._timers: set[asyncio.TimerHandle] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._drainers: dict[str, asyncio.Task[None]] = {}
        self._wakeups: dict[str, int] = {}  # kicks per thread, so a kick during a claim is not lost
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Resume what a previous process left queued or running."""
        for thread in await self.store.recover():
            self.kick(thread)

    def kick(self, thread: str) -> None:
        """A job for ``thread`` was enqueued: make sure someone is draining that thread."""
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

    async def _run(self, job: Job) -> None:
        try:
            await self.handler(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"[:2000]
            log.debug("job %s traceback", job.id, exc_info=True)
            delay = retry_delay(job.attempts, self.retry_base) if retryable(exc) else None
            if delay is None:
                # One line for operators; the traceback only at DEBUG, since most failures are GitHub's answers.
                log.error("job %s (delivery %s) failed after %d attempt(s), not retried: %s", job.id,
                          job.delivery_id, job.attempts, reason)
                await self._recorded(lambda: self.store.finish_job(job.id, error=reason))
                return
            log.warning("job %s (delivery %s) failed (attempt %d), retrying in %.0fs: %s", job.id, job.delivery_id,
                        job.attempts, delay, reason)
            await self._recorded(lambda: self.store.retry_job(job.id, after=delay, error=reason))
            self._later(delay, job.thread)
        else:
            await self._recorded(lambda: self.store.finish_job(job.id))

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
        timer = asyncio.get_running_loop().call_later(delay, lambda: (self._timers.discard(timer), self.kick(thread)))
        self._timers.add(timer)

    async def drained(self, timeout: float | None = None) -> None:
        """Wait until no job is queued or running (replay and tests)."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = list(self._drainers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def make_jobs(database_url: str, store: Store, handler: Handler, *, concurrency: int = 8,
              retry_base: float = 5.0) -> "LocalJobs":
    """The job queue for a database: in-process on SQLite, procrastinate workers on PostgreSQL."""
    if database_url.startswith("sqlite"):
        return LocalJobs(store, handler, concurrency=concurrency, retry_base=retry_base)
    from bot.worker import ProcrastinateJobs  # PostgreSQL only: keeps procrastinate off the SQLite path

    return ProcrastinateJobs(store, handler, concurrency=concurrency)  # type: ignore[return-value]
