"""The private tech-debt marker (survives a rotated webhook secret), for issues filed before it existed and across a
crash: an issue known only by its keyed marker gets its private note when that marker finds it, and from the
findings the store still holds (``merged.backfill``, once per process before its first filing); the public marker
an issue will carry is noted before the issue is created, so a crash between the two and a rotation before the
retry files nothing twice. Through the webhook against the sandbox, with the store's records read directly."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from bot.core import events
from bot.core import findings as F
from bot.run import merged as M
from bot.sandbox.team import Team
from bot.store import Posted
from tests.test_attacks_today import KEY2, TESTS, filed, merge_with_key
from tests.test_converging_reviews import merged
from tests.test_verdicts import pull_with
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401


async def scalar(store: Any, sql: str) -> Any:
    return await store._run(lambda db: db.execute(sql).fetchone()[0])  # the bot's store here is SQLite


@contextmanager
def rotated(deps: Any) -> Iterator[None]:
    settings = deps.settings
    deps.settings = dataclasses.replace(settings, webhook_secret=f"{settings.webhook_secret}-rotated")
    try:
        yield
    finally:
        deps.settings = settings


async def first_start_of_the_backfill(store: Any) -> None:
    """As the first process started on the version with the backfill finds the store: no pass run, none recorded."""
    M._BACKFILLS.pop(store, None)
    await store._run(lambda db: db.execute("DELETE FROM store_notes"))


def keep_findings(deps: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """As before merges let their findings go (the installs the private marker came after)."""
    async def keep(repo: str, number: int) -> None:
        return None
    monkeypatch.setattr(deps.store, "forget_findings", keep)


async def as_before_the_private_marker(deps: Any, number: int) -> F.Tracked:
    """The store as an install of before the private marker left it: the issue under its keyed marker only."""
    [t] = F.load((await deps.store.load_findings(REPO, number)).findings).values()
    assert await deps.store.forget_posted(M.filed_marker(REPO, t))
    assert await scalar(deps.store, "DELETE FROM debt_filings RETURNING 1") == 1
    key = M.finding_key(deps.settings.webhook_secret)
    assert await deps.store.find_posted(M.debt_marker(REPO, t, key=key)) is not None
    return t


async def test_a_keyed_marker_that_finds_the_issue_records_the_private_one(
        bot: Any, sandbox: Any, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    deps = bot[0].deps
    keep_findings(deps, monkeypatch)
    await merge_with_key(bot, sandbox, 700)
    [n] = filed(sandbox)
    t = await as_before_the_private_marker(deps, 700)
    await merge_with_key(bot, sandbox, 702)  # the same key: found by the keyed marker, and the private one noted
    assert (await deps.store.find_posted(M.filed_marker(REPO, t))).number == n  # type: ignore[union-attr]
    with rotated(deps):
        await merge_with_key(bot, sandbox, 704)
    assert filed(sandbox) == [n]


async def test_the_backfill_notes_issues_of_before_from_the_findings_kept(
        bot: Any, sandbox: Any, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    deps = bot[0].deps
    keep_findings(deps, monkeypatch)
    await merge_with_key(bot, sandbox, 710)
    [n] = filed(sandbox)
    t = await as_before_the_private_marker(deps, 710)
    await first_start_of_the_backfill(deps.store)
    other = pull_with(sandbox, 712, {"app/other.py": KEY2 + "\n", **TESTS})  # another finding, merged first
    await send(bot, sandbox, "pull_request", other)
    await send(bot, sandbox, "pull_request", merged(other, other["pull_request"]["head"]["sha"]))
    assert (await deps.store.find_posted(M.filed_marker(REPO, t))).number == n  # type: ignore[union-attr]
    assert await M.backfill(deps.store, M.finding_key(deps.settings.webhook_secret)) == 0  # done once: idempotent
    with rotated(deps):
        await merge_with_key(bot, sandbox, 714)  # the first finding merged again, under the new secret
    assert len(filed(sandbox)) == 2 and filed(sandbox)[0] == n


async def test_a_crash_between_filing_and_recording_then_a_rotation_files_nothing_twice(
        bot: Any, sandbox: Any, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    rt, _ = bot
    deps = rt.deps
    p = pull_with(sandbox, 720, {"app/client.py": "import os\n" + KEY2 + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    event = events.parse("pull_request", merged(p, p["pull_request"]["head"]["sha"]), "d-720")
    assert isinstance(event, events.PullMerged)
    gh = await deps.github.installation(event.installation_id)
    remember = deps.store.remember_posted

    async def crash(posted: Posted) -> None:  # the process dies as the created issue is to be recorded
        raise RuntimeError("killed")
    with monkeypatch.context() as m:
        m.setattr(deps.store, "remember_posted", crash)
        with pytest.raises(RuntimeError, match="killed"):
            await M.on_pull_merged(event, gh, deps)
    [n] = filed(sandbox)  # the issue was created; nothing of it recorded but the marker noted before
    assert deps.store.remember_posted == remember
    with rotated(deps):  # rotated before the retry
        await M.on_pull_merged(event, gh, deps)
    assert filed(sandbox) == [n]
    with rotated(deps):
        await merge_with_key(bot, sandbox, 722)  # and the private note now finds it at once
    assert filed(sandbox)[0] == n and n not in filed(sandbox)[1:]


async def test_a_process_started_before_any_merge_notes_them_before_a_rotation(
        bot: Any, sandbox: Any, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backfill runs at start-up too (in the background): a process that sees no merge under the old secret
    still notes what that secret filed, so the next process, under a rotated one, files nothing twice."""
    import asyncio

    from bot.run.runtime import Runtime
    rt, _ = bot
    deps = rt.deps
    keep_findings(deps, monkeypatch)
    await merge_with_key(bot, sandbox, 730)
    [n] = filed(sandbox)
    t = await as_before_the_private_marker(deps, 730)
    await first_start_of_the_backfill(deps.store)  # the next start is the first on the version with the backfill
    second = await Runtime(rt.settings, github_max_wait=5.0, github_backoff=0.01).start()  # same store file
    try:
        for _ in range(200):  # the start-up pass is a background task
            if await deps.store.find_posted(M.filed_marker(REPO, t)) is not None:
                break
            await asyncio.sleep(0.02)
        assert (await deps.store.find_posted(M.filed_marker(REPO, t))).number == n  # type: ignore[union-attr]
    finally:
        await second.close()
