"""Infrastructure failures: the runner, the network or the registry failed, not the change (stub)."""

from __future__ import annotations

from bot.core.ci_output.records import Infra


def recognise(lines: list[str]) -> Infra | None:
    """The infrastructure failure cleaned `lines` show, if any."""
    return None
