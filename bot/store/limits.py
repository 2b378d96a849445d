"""Shared limits, the arithmetic both stores use: window counters and token reservations.

Pure: the stores read the rows under their own lock and ask these functions what to write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

Limit = tuple[str, int, float]  # (key, at most this many events, in this many seconds)
Cap = tuple[str, int]  # (key, at most this many tokens, settled and reserved together)


def window_wait(limits: Sequence[Limit], recent: Mapping[str, Sequence[float]], now: float) -> float:
    """Seconds until one more event fits under every limit; 0.0 if it fits now.

    ``recent[key]`` holds the key's event times within its window, oldest first. With n events in the
    window and room for `limit`, the event that must leave first is the (n - limit)-th oldest.
    """
    wait = 0.0
    for key, limit, window in limits:
        times = recent.get(key, ())
        if limit <= 0:
            return window
        if len(times) >= limit:
            wait = max(wait, times[len(times) - limit] + window - now)
    return max(wait, 0.0)


def nth_newest_wait(limits: Sequence[Limit], nth: Mapping[str, float | None], now: float) -> float:
    """:func:`window_wait` from the one event of each key it depends on: ``nth[key]`` is the time of the key's
    `limit`-th newest event within its window (None: fewer than `limit` there). A store reads just that row
    (an index scan of `limit` rows), not every event of a window that may hold thousands."""
    wait = 0.0
    for key, limit, window in limits:
        if limit <= 0:
            return window
        at = nth.get(key)
        if at is not None:
            wait = max(wait, at + window - now)
    return max(wait, 0.0)


def fits(caps: Sequence[Cap], totals: Mapping[str, int], amount: int) -> bool:
    """Whether `amount` more stays within every cap, given what each key has spent and reserved."""
    return all(totals.get(key, 0) + amount <= cap for key, cap in caps)
