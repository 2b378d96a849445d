"""Failing tests named in a log, per framework (stub: the helper owning this module fills it in)."""

from __future__ import annotations


def failing_tests(lines: list[str]) -> list[str]:
    """Every failing test named in cleaned log `lines`, in order of first mention, deduplicated."""
    return []
