"""No lost deliveries: the running bot sweeps GitHub's delivery log and asks for what failed, once each.

GitHub never redelivers a failed delivery by itself. A delivery the bot answered 503 (its store was
down) or never answered is asked for again by the sweep; one the bot refused on purpose (a 4xx: a bad
signature) is not; and no delivery is asked for twice, by one process or by several sharing a store.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.run.runtime import Runtime
from bot.settings import Settings


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_the_sweep_asks_for_failed_deliveries_once_each_across_processes(sandbox: Any,
                                                                                settings: Settings) -> None:
    now = datetime.now(UTC)
    sandbox.add_hook_delivery(status_code=502, guid="g-old", delivered_at=iso(now - timedelta(hours=5)))  # newest last
    sandbox.add_hook_delivery(status_code=503, guid="g-store-down", delivered_at=iso(now - timedelta(minutes=5)))
    sandbox.add_hook_delivery(status_code=0, guid="g-no-answer", delivered_at=iso(now - timedelta(minutes=4)))
    sandbox.add_hook_delivery(status_code=401, guid="g-bad-signature", delivered_at=iso(now - timedelta(minutes=3)))
    sandbox.add_hook_delivery(status_code=202, guid="g-fine", delivered_at=iso(now - timedelta(minutes=2)))
    plain = sandbox.add_hook_delivery

    def still_down(**kw: Any) -> dict[str, Any]:  # each redelivery fails again: the store is still down
        return plain(**{**kw, "status_code": 503} if kw.get("redelivery") else kw)

    sandbox.add_hook_delivery = still_down
    fast = settings.with_overrides(redeliver_every=0.1)
    first, second = await Runtime(fast).start(), await Runtime(fast).start()  # two processes, one store
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while len(sandbox.written("redelivery")) < 2 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # several more sweeps of both
    finally:
        await first.close()
        await second.close()
    asked = sorted(w.data["guid"] for w in sandbox.written("redelivery"))
    assert asked == ["g-no-answer", "g-store-down"]  # never twice, never a 4xx, never outside the window
    sweeps = [r for r in sandbox.requests if r.path == "/app/hook/deliveries"]
    assert len(sweeps) >= 4  # it kept sweeping (so "never twice" was tested, not merely not reached)


async def test_an_ask_github_refused_is_asked_again_next_pass(sandbox: Any, settings: Settings) -> None:
    now = datetime.now(UTC)
    sandbox.add_hook_delivery(status_code=503, guid="g-retry", delivered_at=iso(now - timedelta(minutes=5)))
    sandbox.fail("POST", r"/app/hook/deliveries/\d+/attempts", 502, times=1)
    rt = await Runtime(settings.with_overrides(redeliver_every=0.1)).start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not sandbox.written("redelivery") and loop.time() < deadline:
            await asyncio.sleep(0.05)
    finally:
        await rt.close()
    assert [w.data["guid"] for w in sandbox.written("redelivery")] == ["g-retry"]
    assert [r.status for r in sandbox.requests if r.path.endswith("/attempts")][:2] == [502, 202]


async def test_one_pass_asks_for_at_most_its_limit(sandbox: Any, settings: Settings) -> None:
    import aiohttp

    from bot.github.client import GitHubApp
    from bot.run.redeliver import redeliver

    now = datetime.now(UTC)
    for i in range(3):
        sandbox.add_hook_delivery(status_code=503, guid=f"g-{i}", delivered_at=iso(now - timedelta(minutes=5 - i)))
    async with aiohttp.ClientSession() as session:
        outcome = await redeliver(GitHubApp(settings, session), timedelta(hours=1), limit=2, server_errors_only=True)
    assert len(outcome.redelivered) == 2 and len(sandbox.written("redelivery")) == 2
