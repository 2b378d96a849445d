"""Work the running bot does every so often, apart from the jobs: one loop for all of it.

The acknowledger, the job poller, the redelivery sweep and retention each pass this their one pass. A pass
that fails is logged and the next one tries again: a store outage as a warning (it passes), anything else
with its traceback (a bug); neither stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.store import StoreUnavailable

log = logging.getLogger(__name__)


async def every(seconds: float, what: str, work: Callable[[], Awaitable[object]], *, now: bool = False) -> None:
    """Run ``work`` every ``seconds`` until cancelled; the first pass at once with ``now``, else after a wait."""
    if not now:
        await asyncio.sleep(seconds)
    while True:
        try:
            await work()
        except StoreUnavailable as exc:
            log.warning("%s: store unavailable: %s", what, exc)
        except Exception:
            log.exception("%s failed", what)
        await asyncio.sleep(seconds)
