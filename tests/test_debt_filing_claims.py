"""Filing a tech-debt issue once: the marker an earlier attempt noted is only looked for, never filed under (it may be
a retired, leaked key's), and two merges of the same finding at once file one issue (the claim in ``debt_filings``).
Through the sandbox GitHub, on SQLite and on PostgreSQL (skipped without a server)."""
from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.core import events
from bot.core import findings as F
from bot.core.markers import markers_in
from bot.run import merged as M
from bot.sandbox.team import Team
from tests.test_attacks_today import KEY2, TESTS, filed
from tests.test_converging_reviews import merged
from tests.test_debt_markers_backfill import rotated
from tests.test_postgres_store import opened_store
from tests.test_verdicts import pull_with
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401


@pytest.fixture(params=["sqlite", "postgres"])
async def filing_store(request: pytest.FixtureRequest, bot: Any) -> AsyncIterator[Any]:  # noqa: F811
    """Where the filings are noted and claimed: the bot's SQLite store, or a PostgreSQL one beside it."""
    if request.param == "sqlite":
        yield bot[0].deps.store
        return
    async with opened_store() as store:
        yield store


async def reviewed(bot: Any, sandbox: Any, number: int) -> tuple[events.PullMerged, F.Tracked, Any]:
    """A pull request with one credential finding, reviewed; its merge event, the finding and an installation client."""
    p = pull_with(sandbox, number, {"app/client.py": "import os\n" + KEY2 + "\n", **TESTS})
    await send(bot, sandbox, "pull_request", p)
    event = events.parse("pull_request", merged(p, p["pull_request"]["head"]["sha"]), f"d-{number}")
    assert isinstance(event, events.PullMerged)
    [t] = F.load((await bot[0].deps.store.load_findings(REPO, number)).findings).values()
    return event, t, await bot[0].deps.github.installation(event.installation_id)


def body_markers(sandbox: Any, number: int) -> list[str]:
    return markers_in(sandbox.repo(REPO).issues[number]["body"])


async def test_a_retry_after_a_rotation_files_under_the_new_key_never_the_retired_one(
        bot: Any, sandbox: Any, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    """The POST fails (GitHub's 5xx) after the marker under key K0 was noted; the operator rotates the secret (it
    leaked); the retry finds no issue carrying K0's marker, and files under K1's: K0's HMAC is never published."""
    deps = bot[0].deps
    event, t, gh = await reviewed(bot, sandbox, 750)
    old = markers_in(M.debt_marker(REPO, t, key=M.finding_key(deps.settings.webhook_secret)))[0]
    sandbox.fail("POST", rf"/repos/{REPO}/issues", 502, times=-1)
    with pytest.raises(Exception):  # noqa: B017  (GitHub's 502, whatever the client makes of it)
        await M.on_pull_merged(event, gh, deps)
    sandbox.clear_faults()
    assert filed(sandbox) == []
    monkeypatch.setattr(M, "CLAIM_TRIES", 1)  # the failed attempt let its claim go: the retry needs no wait
    with rotated(deps):
        new = markers_in(M.debt_marker(REPO, t, key=M.finding_key(deps.settings.webhook_secret)))[0]
        await M.on_pull_merged(event, gh, deps)
        [n] = filed(sandbox)
        assert new in body_markers(sandbox, n) and old not in body_markers(sandbox, n)
        await M.on_pull_merged(event, gh, deps)  # a redelivery: found by the private marker
    assert filed(sandbox) == [n]


async def test_two_rotations_between_failed_attempts_still_file_one_issue(
        bot: Any, sandbox: Any, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    """K0's attempt fails before the POST lands; under K1 the POST lands unheard; under K2 the retry must look for
    K1's marker (noted before K1's POST), not K0's, and find that issue."""
    deps = bot[0].deps
    event, t, gh = await reviewed(bot, sandbox, 758)
    monkeypatch.setattr(M, "CLAIM_TRIES", 1)
    sandbox.fail("POST", rf"/repos/{REPO}/issues", 502, times=-1)
    with pytest.raises(Exception):  # noqa: B017
        await M.on_pull_merged(event, gh, deps)
    sandbox.clear_faults()
    with rotated(deps):
        await landed_unheard_then_rotated(event, gh, deps, sandbox)


async def test_an_issue_filed_under_the_noted_marker_is_found_after_a_rotation(
        bot: Any, sandbox: Any, team: Team) -> None:
    """The POST landed but the bot never heard (a 502 after the write): the retry, under a rotated secret, finds the
    issue by the marker noted (GitHub's listing of the issues the bot created) and files nothing."""
    deps = bot[0].deps
    event, t, gh = await reviewed(bot, sandbox, 752)
    await landed_unheard_then_rotated(event, gh, deps, sandbox)


async def landed_unheard_then_rotated(event: events.PullMerged, gh: Any, deps: Any, sandbox: Any) -> None:
    """The filing's POST lands but the bot hears a 502; the retry, under a rotated secret, files nothing more."""
    sandbox.fail("POST", rf"/repos/{REPO}/issues", 502, times=-1, landed=True)
    with pytest.raises(Exception):  # noqa: B017
        await M.on_pull_merged(event, gh, deps)
    sandbox.clear_faults()
    [n] = filed(sandbox)
    with rotated(deps):
        await M.on_pull_merged(event, gh, deps)
    assert filed(sandbox) == [n]


async def test_two_merges_of_the_same_finding_at_once_file_one_issue(
        bot: Any, sandbox: Any, team: Team, filing_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    deps = dataclasses.replace(bot[0].deps, store=filing_store)
    event, t, gh = await reviewed(bot, sandbox, 754)
    monkeypatch.setattr(M, "CLAIM_POLL", 0.02)
    done = await asyncio.gather(M._file(gh, deps, event, t, "9" * 40), M._file(gh, deps, event, t, "9" * 40))
    [n] = filed(sandbox)
    assert sorted(done) == [f"#{n}", f"#{n} (filed before)"]


async def test_a_claim_held_fails_the_job_for_a_retry_and_a_dead_ones_lapses(
        bot: Any, sandbox: Any, team: Team, filing_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another job holds the claim (it is filing now, or it died): this one fails visibly, as a timeout (retried);
    a claim older than its lease is a dead job's, and is taken over."""
    deps = dataclasses.replace(bot[0].deps, store=filing_store)
    event, t, gh = await reviewed(bot, sandbox, 756)
    public = M.debt_marker(REPO, t, key=M.finding_key(deps.settings.webhook_secret))
    assert await filing_store.claim_filing(M.filed_marker(REPO, t), public, M.CLAIM_LEASE) == public
    monkeypatch.setattr(M, "CLAIM_TRIES", 2)
    monkeypatch.setattr(M, "CLAIM_POLL", 0.01)
    with pytest.raises(M.FilingInProgress):
        await M._file(gh, deps, event, t, "9" * 40)
    assert filed(sandbox) == [] and isinstance(M.FilingInProgress("x"), TimeoutError)
    # A short lease, not none: with 0 the filing job's renewal (every CLAIM_LEASE / 3) spun on the store, and on a
    # busy machine the test took 27-47 s, once over 9 minutes. The held claim is older than it after the wait.
    monkeypatch.setattr(M, "CLAIM_LEASE", 0.3)
    await asyncio.sleep(0.4)
    assert (await M._file(gh, deps, event, t, "9" * 40)).startswith("#")
    assert len(filed(sandbox)) == 1
