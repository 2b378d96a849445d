"""``python -m bot worker``: a procrastinate worker process running jobs from a PostgreSQL store."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from bot import settings as settings_mod
from bot.cli.common import env, fail, start_logging
from bot.run.pg_worker import STALLED_AFTER, work
from bot.run.runtime import Runtime
from bot.settings import Settings, SettingsError
from bot.store import StoreUnavailable
from bot.store.postgres import PostgresStore

log = logging.getLogger(__name__)


async def run_worker(settings: Settings, concurrency: int, *, stalled_after: float = STALLED_AFTER) -> None:
    """``python -m bot worker``: the bot's store, GitHub App client and pipeline, fed by procrastinate.

    Runs until SIGTERM or SIGINT, then lets running jobs finish for up to ``SHUTDOWN_GRACE`` seconds.
    """
    runtime = await Runtime(settings).start()
    try:
        if not isinstance(runtime.store, PostgresStore):
            raise ValueError("the worker needs DATABASE_URL=postgresql://...")
        # The pipeline loads now, on a thread, not inside the first job (the anthropic SDK follows on its own
        # thread): on the loop that import blocks for about a second, and a heartbeat late by more than
        # --stalled-after gets a live worker's jobs handed to another.
        await runtime.preload()
        runtime.deps  # noqa: B018  (built now, on the loop, from the modules just loaded)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("worker running %d jobs at a time (GitHub API %s)", concurrency, settings.github_api_url)
        try:
            await work(runtime.store, runtime.handle, concurrency=concurrency, stop=stop,
                       stalled_after=stalled_after, retry_base=settings.job_retry_base,
                       on_failed=runtime.job_failed, on_done=runtime.job_done)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
    finally:
        await runtime.close()
    log.info("worker stopped")


def cmd_worker(args: argparse.Namespace) -> int:
    try:
        settings = settings_mod.load(env(args), require_app=True)
    except SettingsError as exc:
        return fail(str(exc))
    if settings.database_url.startswith("sqlite"):
        return fail("on SQLite the jobs run inside `serve`; a separate worker needs DATABASE_URL=postgresql://...")
    if (args.concurrency is not None and args.concurrency < 1) or args.stalled_after <= 0:
        return fail("--concurrency and --stalled-after must be positive")
    start_logging(args.log_level or "INFO")
    try:
        asyncio.run(run_worker(settings, args.concurrency or settings.job_concurrency,
                               stalled_after=args.stalled_after))
    except StoreUnavailable as exc:
        return fail(f"cannot open the store: {exc}")
    return 0
