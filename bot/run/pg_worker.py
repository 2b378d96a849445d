"""Jobs on PostgreSQL through procrastinate: the task that runs one job, the worker process, the web side.

The web process only records: :meth:`PostgresStore.accept_delivery` writes the delivery, our job row
and its procrastinate job in one transaction. ``python -m bot worker`` processes run the jobs: one at a
time per thread and in arrival order (procrastinate's ``lock`` is the thread), and the jobs of a worker
that died (no heartbeat for ``stalled_after`` seconds) are put back in the queue by the live ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import procrastinate
from procrastinate.exceptions import JobAborted

from bot.run.jobs import Handler, judge
from bot.store import Store, StoreUnavailable
from bot.store.postgres import QUEUE, TASK, PostgresStore

log = logging.getLogger(__name__)

STALLED_AFTER = 30.0  # seconds without a heartbeat before a worker counts as dead and its jobs run elsewhere
SHUTDOWN_GRACE = 20.0  # on SIGTERM, how long running jobs may finish before they go back to the queue


class JobFailed(Exception):
    """The handler raised; our job row says why, procrastinate marks its job failed (no retry)."""


class JobRetry(Exception):
    """The handler failed in a way that may pass (an outage): procrastinate runs the job again later."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"retry in {delay:.0f}s")
        self.delay = delay


class _RetryWhenInterrupted(procrastinate.BaseRetryStrategy):
    """A job cut short by its worker's shutdown goes back to the queue at once; one that failed in a way
    that may pass is retried after the delay of bot.run.jobs.retry_delay; any other failure stays failed."""

    def get_retry_decision(self, *, exception: BaseException, job: Any) -> procrastinate.RetryDecision | None:
        if isinstance(exception, (asyncio.CancelledError, JobAborted)):
            return procrastinate.RetryDecision(retry_in={"seconds": 0})
        if isinstance(exception, JobRetry):
            # retry_in takes whole seconds only: the delay may have a fraction
            return procrastinate.RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=exception.delay))
        return None


async def process_job(context: procrastinate.JobContext, job_id: int, delivery_id: str) -> None:
    """The procrastinate task: run our job ``job_id`` with the handler its worker was given."""
    store: PostgresStore = context.additional_context["store"]
    handler: Handler = context.additional_context["handler"]
    job = await store.begin_job(job_id)
    if job is None:  # a worker finished it, then died before procrastinate heard
        log.info("job %s (delivery %s) was already finished; not run again", job_id, delivery_id)
        return
    try:
        await handler(job)
    except asyncio.CancelledError:  # shutdown outlasted SHUTDOWN_GRACE: procrastinate re-queues it too
        await store.requeue_job(job.id)
        raise
    except Exception as exc:
        # One line for operators (procrastinate logs it); the traceback only at DEBUG, as in LocalJobs.
        log.debug("job %s traceback", job.id, exc_info=True)
        outcome = judge(exc, job.attempts, context.additional_context.get("retry_base", 5.0))
        if outcome.retry_in is not None:
            # procrastinate holds the job back itself; run_after is for the thread's note ("tries again in …").
            await store.retry_job(job.id, after=outcome.retry_in, error=outcome.reason)
            raise JobRetry(outcome.retry_in) from None
        await store.finish_job(job.id, error=outcome.reason)
        on_failed = context.additional_context.get("on_failed")
        if on_failed is not None:
            await on_failed(job, outcome)
        raise JobFailed(f"job {job.id} (delivery {delivery_id}) failed: {outcome.reason}") from None
    await store.finish_job(job.id)
    on_done = context.additional_context.get("on_done")
    if on_done is not None:
        await on_done(job)


def make_app() -> procrastinate.App:
    """A procrastinate App with our one task; it is opened on the store's pool, so it needs no URL."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector())
    app.task(name=TASK, queue=QUEUE, pass_context=True, retry=_RetryWhenInterrupted())(process_job)
    return app


async def _requeue_stalled(store: PostgresStore, stalled_after: float) -> None:
    """Jobs of workers silent for ``stalled_after`` seconds go back to the queue (errors: try next round)."""
    try:
        requeued = await store.requeue_stalled(stalled_after)
    except StoreUnavailable as exc:
        log.warning("cannot check for stalled jobs: %s", exc)
    except Exception:  # e.g. a job finished between the check and the retry: the next round sees it
        log.exception("checking for stalled jobs failed")
    else:
        if requeued:
            log.warning("re-queued jobs %s: their worker sent no heartbeat for %.0f s", requeued, stalled_after)


async def _requeue_stalled_forever(store: PostgresStore, stalled_after: float) -> None:
    while True:
        await asyncio.sleep(stalled_after / 2)
        await _requeue_stalled(store, stalled_after)


async def work(store: PostgresStore, handler: Handler, *, concurrency: int, stop: asyncio.Event,
               stalled_after: float = STALLED_AFTER, shutdown_grace: float = SHUTDOWN_GRACE,
               name: str = "worker", retry_base: float = 5.0, on_failed: Any = None, on_done: Any = None) -> None:
    """Run jobs in this process until ``stop`` is set; then running jobs finish, or go back to the queue."""
    app = make_app()
    # Once before the worker's first fetch: a re-queue does not wake a worker that is not listening yet.
    await _requeue_stalled(store, stalled_after)
    async with app.open_async(pool=store.pool):
        worker = asyncio.create_task(app.run_worker_async(
            queues=[QUEUE], name=name, concurrency=concurrency, install_signal_handlers=False,
            additional_context={"store": store, "handler": handler, "retry_base": retry_base,
                                "on_failed": on_failed, "on_done": on_done},
            update_heartbeat_interval=stalled_after / 3, stalled_worker_timeout=stalled_after,
            shutdown_graceful_timeout=shutdown_grace), name="procrastinate worker")
        sweeper = asyncio.create_task(_requeue_stalled_forever(store, stalled_after), name="stalled jobs")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sweeper, stopping):
                task.cancel()
            stopped_early = worker.done()
            worker.cancel()  # procrastinate's way to stop a worker run as a task: graceful, see shutdown_grace
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            await asyncio.gather(sweeper, stopping, return_exceptions=True)
        if stopped_early:  # a side task (listener, heartbeat) failed: exit non-zero so the platform restarts us
            raise RuntimeError("the procrastinate worker stopped on its own; see the log above")


class ProcrastinateJobs:
    """The web process's side of the queue on PostgreSQL, with the interface of :class:`bot.run.jobs.LocalJobs`.

    Nothing runs here: ``accept_delivery`` already enqueued the job and procrastinate's NOTIFY wakes a
    worker. ``handler`` and ``concurrency`` belong to the workers and are kept only for the same signature.
    """

    def __init__(self, store: Store, handler: Handler, *, concurrency: int = 8, poll: float = 0.05) -> None:
        self.store = store
        self.handler = handler
        self.concurrency = concurrency
        self.poll = poll

    async def start(self) -> None:
        """Nothing to resume: what a dead worker left running is re-queued by the live workers."""

    def kick(self, thread: str) -> None:
        """The job is already enqueued in the delivery's transaction; nothing to wake here."""

    async def drained(self, timeout: float | None = None) -> None:
        """Wait until no job is queued or running in the store (replay and tests)."""
        async def idle() -> None:
            while True:
                states = await self.store.job_states()
                if not states.get("queued") and not states.get("running"):
                    return
                await asyncio.sleep(self.poll)
        await asyncio.wait_for(idle(), timeout)

    async def close(self) -> None:
        """Nothing to stop: the workers are other processes."""

