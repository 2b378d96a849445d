"""The root error of a failed job's log (stub: the helper owning this module fills it in)."""

from __future__ import annotations

from bot.core.ci_output.records import RootError


def root_error(lines: list[str], noise: frozenset[int] = frozenset()) -> RootError | None:
    """The first error in cleaned `lines` that explains the failure (never the exit-code trailer or a
    downstream cascade); `noise` holds indexes of lines that match green runs' templates."""
    return None
