"""``python -m bot redeliver --since 1h``: ask GitHub to send again what the bot failed to take.

GitHub keeps an App's deliveries for three days and never retries a failed one by itself. After an
outage (or a 503 from the store) this lists the failed deliveries since a time and requests a
redelivery of each, once per delivery GUID, skipping those a later attempt already delivered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.github.client import GitHubApp

_SPAN = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str) -> timedelta:
    """``30m``, ``1h``, ``2d`` → a span; GitHub keeps deliveries three days, so no more than that."""
    m = _SPAN.match(text.strip().lower())
    if not m:
        raise ValueError(f"--since takes a span like 30m, 1h or 2d, not {text!r}")
    span = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    if span > timedelta(days=3):
        raise ValueError("--since can reach back three days at most (GitHub keeps deliveries that long)")
    return span


@dataclass(frozen=True)
class Outcome:
    redelivered: list[dict[str, Any]]
    skipped: int  # failed but already redelivered successfully, or outside the window


def _when(delivery: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(delivery["delivered_at"]).replace("Z", "+00:00"))


async def redeliver(app: GitHubApp, since: timedelta, *, now: datetime | None = None, dry_run: bool = False) -> Outcome:
    now = now or datetime.now(timezone.utc)
    cutoff = now - since
    gh = app.app_client()
    recent: list[dict[str, Any]] = []
    async for d in gh.getiter("/app/hook/deliveries?per_page=100", jwt=app.jwt()):
        if _when(d) < cutoff:
            break  # newest first: the rest are older
        recent.append(d)
    delivered = {d["guid"] for d in recent if 200 <= int(d.get("status_code") or 0) < 300}
    chosen, seen, skipped = [], set(), 0
    for d in recent:
        failed = not 200 <= int(d.get("status_code") or 0) < 300
        if not failed:
            continue
        if d["guid"] in delivered or d["guid"] in seen:
            skipped += 1
            continue
        seen.add(d["guid"])
        chosen.append(d)
    if not dry_run:
        for d in chosen:
            await gh.post(f"/app/hook/deliveries/{d['id']}/attempts", data=b"", jwt=app.jwt())
    return Outcome(redelivered=chosen, skipped=skipped)
