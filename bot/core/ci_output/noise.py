"""Lines of a failed log that green runs of the same job also print (stub)."""

from __future__ import annotations


def noise_lines(lines: list[str], green_logs: tuple[str, ...]) -> frozenset[int]:
    """Indexes of cleaned `lines` that match templates mined from `green_logs` (raw logs)."""
    return frozenset()
