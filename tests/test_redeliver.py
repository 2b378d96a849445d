"""Recovery of missed deliveries: failed ones in the window are redelivered once each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from bot.github.client import GitHubApp
from bot.run.redeliver import parse_since, redeliver


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_parse_since() -> None:
    assert parse_since("90m") == timedelta(minutes=90) and parse_since("2d") == timedelta(days=2)
    for bad in ("1w", "an hour", "4d"):
        with pytest.raises(ValueError):
            parse_since(bad)


async def test_failed_deliveries_in_the_window_are_redelivered_once(sandbox: Any, settings: Any) -> None:
    now = datetime.now(UTC)
    old = sandbox.add_hook_delivery(status_code=502, delivered_at=iso(now - timedelta(hours=5)))
    ok = sandbox.add_hook_delivery(status_code=202, delivered_at=iso(now - timedelta(minutes=50)))
    sandbox.add_hook_delivery(status_code=503, guid="g-failed", delivered_at=iso(now - timedelta(minutes=40)))
    again = sandbox.add_hook_delivery(status_code=503, guid="g-failed", redelivery=True,
                                      delivered_at=iso(now - timedelta(minutes=30)))
    fixed = sandbox.add_hook_delivery(status_code=500, guid="g-fixed", delivered_at=iso(now - timedelta(minutes=20)))
    sandbox.add_hook_delivery(status_code=202, guid="g-fixed", redelivery=True, delivered_at=iso(now - timedelta(minutes=10)))
    async with aiohttp.ClientSession() as session:
        outcome = await redeliver(GitHubApp(settings, session), timedelta(hours=1), now=now)
    assert [d["guid"] for d in outcome.redelivered] == ["g-failed"]
    assert outcome.skipped == 2  # the second failure of g-failed, and g-fixed (already delivered)
    posted = [w for w in sandbox.writes if w.kind == "redelivery"]
    assert len(posted) == 1
    assert old["id"] not in [d["id"] for d in outcome.redelivered] and ok and fixed and again
