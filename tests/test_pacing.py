"""Writes are paced per installation: spaced out, and at most 80 content-creating requests a minute."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from bot.github.client import GitHubApp
from bot.github.pacing import WritePacer
from tests.conftest import INSTALLATION, load_fixture


async def test_writes_are_spaced_reads_are_not(sandbox: Any, settings: Any) -> None:
    """Judged by what the pacer let through and when, not by how long the requests took: on a busy machine a
    write's own round trip can eat its spacing (the pacer then rightly waits less), and reads can be slow."""
    sandbox.seed_from_payload(load_fixture("issues.opened.json"))
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(settings.with_overrides(write_spacing=0.1), session)
        gh = await app.installation(INSTALLATION)
        pacer = app.pacers[INSTALLATION]
        for i in range(5):
            await gh.getitem("/repos/Codertocat/Hello-World/issues/1")
        assert not pacer._recent and pacer.waited == 0  # no read went through the pacer
        start = time.monotonic()
        for i in range(5):
            await gh.post("/repos/Codertocat/Hello-World/issues/1/comments", data={"body": f"n{i}"})
        writes = time.monotonic() - start
    let_through = list(pacer._recent)  # when the pacer let each write go
    assert len(let_through) == 5 and len(sandbox.written("comment")) == 5
    assert all(b - a >= 0.1 - 1e-6 for a, b in zip(let_through, let_through[1:])), let_through
    assert writes >= 0.4


async def test_at_most_per_minute_in_any_minute() -> None:
    now = [1000.0]
    pacer = WritePacer(per_minute=3, spacing=0.0, clock=lambda: now[0])
    for _ in range(3):
        await pacer.acquire()
    now[0] += 59.8  # the fourth write of this minute must wait for the first to age out
    start = time.monotonic()
    await pacer.acquire()
    assert time.monotonic() - start >= 0.15
    assert 0.15 <= pacer.waited <= 0.3


async def test_concurrent_writers_share_one_pace() -> None:
    pacer = WritePacer(per_minute=80, spacing=0.05)
    start = time.monotonic()
    await asyncio.gather(*(pacer.acquire() for _ in range(6)))
    assert time.monotonic() - start >= 0.25
