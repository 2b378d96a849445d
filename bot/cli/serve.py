"""``python -m bot serve``: the webhook server and, on SQLite, the job runner in one process."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Callable

from bot import settings as settings_mod
from bot.cli.common import fail, settings_or_exit
from bot.logs import write_off_thread


async def _serve(settings: settings_mod.Settings) -> None:
    from bot.run.runtime import Runtime

    runtime = await Runtime(settings).start()
    try:
        runners = await runtime.listen()
    except BaseException:
        await runtime.close()
        raise
    # Listening already: load the agent side on a thread meanwhile (jobs await it; see Runtime.preload).
    runtime.preload()
    logging.getLogger("bot").info("serving on port %d%s (GitHub API %s)", settings.port,
                                  "" if settings.metrics_port is None else f", /metrics on {settings.metrics_port}",
                                  settings.github_api_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for runner in runners:
            await runner.cleanup()
        await runtime.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (its transports take a third less CPU per delivery than
    asyncio's), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args, require_app=True, log_level="INFO")
    if isinstance(settings, int):
        return settings
    stop_logging = write_off_thread()  # a line per delivery: written by a thread, not the event loop
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(settings))
    except OSError as exc:
        return fail(f"cannot serve on port {settings.port}: {exc.strerror}")
    finally:
        stop_logging()
    return 0
