"""``python -m bot redeliver --since 1h``: ask GitHub to send again what the bot failed to take.

GitHub keeps an App's deliveries for three days and never retries a failed one by itself. After an
outage (or a 503 from the store) this lists the failed deliveries since a time and requests a
redelivery of each, once per delivery GUID, skipping those a later attempt already delivered. The
running bot does the same by itself every few minutes (:func:`sweep_forever`), for deliveries that got a
5xx or no answer, never asking twice for one delivery.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.github.client import GitHubApp
from bot.run import periodic
from bot.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

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


def _status(delivery: dict[str, Any]) -> int:
    try:
        return int(delivery.get("status_code") or 0)
    except (TypeError, ValueError):
        return 0


def _answered_by_us(delivery: dict[str, Any]) -> bool:
    """A 4xx was the bot's own answer (a bad signature, a malformed payload): sending it again changes nothing.
    A 5xx, or no answer at all (status 0: a timeout, the bot was down), is what the sweep recovers."""
    return 400 <= _status(delivery) < 500


def choose(recent: list[dict[str, Any]], *, server_errors_only: bool = False) -> tuple[list[dict[str, Any]], int]:
    """(deliveries to redeliver, how many failed ones were skipped): once per GUID, none a later attempt delivered."""
    delivered = {d.get("guid") for d in recent if 200 <= _status(d) < 300}
    chosen, seen, skipped = [], set(), 0
    for d in recent:
        if 200 <= _status(d) < 300 or (server_errors_only and _answered_by_us(d)):
            continue
        if d.get("guid") in delivered or d.get("guid") in seen or not d.get("guid"):
            skipped += 1
            continue
        seen.add(d["guid"])
        chosen.append(d)
    return chosen, skipped


Claim = Callable[[str, int], Awaitable[bool]]


async def redeliver(app: GitHubApp, since: timedelta, *, now: datetime | None = None, dry_run: bool = False,
                    claim: Claim | None = None, release: Callable[[str], Awaitable[None]] | None = None,
                    limit: int | None = None, server_errors_only: bool = False) -> Outcome:
    """Ask GitHub to redeliver the failed deliveries of the last ``since``. ``claim(guid, id)`` (the sweep's)
    must say yes first, so no delivery is asked for twice, by this process or another; ``limit`` bounds one
    pass."""
    now = now or datetime.now(UTC)
    cutoff = now - since
    gh = app.app_client()
    recent: list[dict[str, Any]] = []
    async for d in gh.getiter("/app/hook/deliveries?per_page=100", jwt=app.jwt()):
        if not isinstance(d, dict) or not d.get("delivered_at") or not isinstance(d.get("id"), int):
            continue
        if _when(d) < cutoff:
            break  # newest first: the rest are older
        recent.append(d)
    chosen, skipped = choose(recent, server_errors_only=server_errors_only)
    if dry_run:
        return Outcome(redelivered=chosen, skipped=skipped)
    done: list[dict[str, Any]] = []
    for d in chosen:
        if limit is not None and len(done) >= limit:
            break
        if claim is not None and not await claim(str(d["guid"]), int(d["id"])):
            skipped += 1
            continue
        try:
            await gh.post(f"/app/hook/deliveries/{d['id']}/attempts", data=b"", jwt=app.jwt())
        except Exception:
            if release is not None:  # the ask never reached GitHub: a later pass may make it
                await release(str(d["guid"]))
            raise
        done.append(d)
    return Outcome(redelivered=done, skipped=skipped)


async def sweep_once(app: GitHubApp, store: Store, *, window: timedelta, limit: int) -> None:
    """One pass of the sweep. GitHub failing is a warning (the next pass tries again); the store's outage is
    raised to the loop, which says so."""
    try:
        outcome = await redeliver(app, window, claim=store.claim_redelivery, release=store.release_redelivery,
                                  limit=limit, server_errors_only=True)
    except StoreUnavailable:
        raise
    except Exception as exc:  # GitHub down, the App's key refused: try next round
        log.warning("redelivery sweep failed: %s: %s", type(exc).__name__, exc)
        return
    if outcome.redelivered:
        log.warning("redelivery sweep: asked GitHub to redeliver %d failed deliveries: %s",
                    len(outcome.redelivered), ", ".join(str(d["guid"]) for d in outcome.redelivered))


async def sweep_forever(app: GitHubApp, store: Store, *, every: float, window: timedelta = timedelta(hours=1),
                        limit: int = 20) -> None:
    """Every ``every`` seconds, redeliver what failed in the last ``window`` (GitHub never does it by itself):
    at most ``limit`` a pass, never one delivery twice (the store's claim is shared by every process)."""
    await periodic.every(every, "redelivery sweep", lambda: sweep_once(app, store, window=window, limit=limit))
