"""Keeps content-creating requests within GitHub's secondary rate limits.

GitHub allows at most 80 content-creating requests a minute (and 500 an hour) per installation and
asks integrators to space writes out (about a second apart) rather than burst them; bursts earn a
secondary rate limit that stalls every run of the installation. One pacer per installation.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class WritePacer:
    def __init__(self, *, per_minute: int = 80, spacing: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.spacing = spacing
        self._clock = clock
        self._recent: deque[float] = deque()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # total seconds spent waiting (for metrics and tests)

    async def acquire(self) -> None:
        """Wait until one more write fits: ``spacing`` after the last, and under ``per_minute``."""
        async with self._lock:
            now = self._clock()
            while self._recent and now - self._recent[0] >= 60.0:
                self._recent.popleft()
            wait = 0.0
            if self._recent:
                wait = max(wait, self._recent[-1] + self.spacing - now)
            if len(self._recent) >= self.per_minute:
                wait = max(wait, self._recent[0] + 60.0 - now)
            if wait > 0:
                self.waited += wait
                await asyncio.sleep(wait)
            self._recent.append(self._clock())
            if len(self._recent) > self.per_minute:
                self._recent.popleft()
