"""A tech-debt issue is found again however it was marked, and its claim outlives a long wait: a model finding's
marker takes its text as its id does (case and punctuation left out), and issues filed under the marker of before
(the text kept as it was) are still found by it; a claim held is renewed while its job files, and a renewal after
the release never takes it back. Through the sandbox GitHub; the claim on SQLite and PostgreSQL (skipped without a
server)."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.core import findings as F
from bot.core.markers import markers_in
from bot.run import merged as M
from bot.sandbox.team import Team
from bot.store import Posted
from tests.conftest import SECRET
from tests.test_attacks_debt import merge_with, model
from tests.test_attacks_today import filed
from tests.test_debt_filing_claims import filing_store  # noqa: F401
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

TEXT = "SQL built by formatting in find()"


async def as_filed_before_the_fold(deps: Any, sandbox: Any, t: F.Tracked, n: int, which: str) -> None:
    """The store and the issue as a filing of before the fold left them: the issue carries the unfolded keyed marker,
    and the store knows it by one unfolded marker (``which``) only."""
    key = M.finding_key(SECRET)
    new = [M.filed_marker(REPO, t), M.debt_marker(REPO, t, key=key), M.debt_marker(REPO, t)]
    old = {"private": M.filed_marker(REPO, t, unfolded=True), "keyed": M.debt_marker(REPO, t, key=key, unfolded=True),
           "unkeyed": M.debt_marker(REPO, t, unfolded=True)}
    assert len(set(new) | set(old.values())) == 6  # the fold changes each of them
    posted = await deps.store.find_posted(new[0])
    for mark in new:
        await deps.store.forget_posted(mark)
    await deps.store.remember_posted(Posted(marker=old[which], repo=REPO, kind="issue", github_id=posted.github_id,
                                            number=n, url=posted.url))
    issue = sandbox.repo(REPO).issues[n]
    issue["body"] = issue["body"].replace(new[1], old["keyed"])
    assert markers_in(issue["body"])[-1] == markers_in(old["keyed"])[0]


@pytest.mark.parametrize("which", ["private", "keyed", "unkeyed"])
async def test_an_issue_filed_under_the_marker_of_before_the_fold_is_found(
        bot: Any, sandbox: Any, team: Team, which: str) -> None:  # noqa: F811
    deps = bot[0].deps
    await merge_with(bot, sandbox, 1000, {"m-sql": model(1, TEXT, "m-sql")})
    [n] = filed(sandbox)
    t = F.Tracked.from_dict(model(1, TEXT, "m-sql"))
    assert t is not None
    await as_filed_before_the_fold(deps, sandbox, t, n, which)
    await merge_with(bot, sandbox, 1100, {"m-sql": model(1, TEXT, "m-sql")})
    assert filed(sandbox) == [n]
    assert (await deps.store.find_posted(M.filed_marker(REPO, t))).number == n  # type: ignore[union-attr]


def test_a_checks_text_is_kept_whole_in_its_marker() -> None:
    """The bot's own words, where numbers may be all that tells two unanchored findings apart."""
    def check(text: str) -> F.Tracked:
        return F.Tracked("c1", F.CHECK, "tests", "warning", text, None, None, F.OPEN, "a" * 40, "a" * 40)
    assert M.debt_marker(REPO, check("3 files changed, no test")) != M.debt_marker(REPO, check("4 files changed, no test"))
    reworded = F.Tracked.from_dict(model(1, TEXT.upper() + ".", "m-sql"))
    assert reworded is not None and M.debt_marker(REPO, reworded) == M.debt_marker(REPO, F.Tracked.from_dict(
        model(1, TEXT, "m-sql")))  # type: ignore[arg-type]


async def test_a_claim_renewed_is_held_past_its_lease_and_a_late_renewal_never_takes_it_back(
        filing_store: Any) -> None:  # noqa: F811
    own, public = "<!-- own -->", "<!-- public -->"
    assert await filing_store.claim_filing(own, public, 1.0) == public
    await asyncio.sleep(0.6)
    await filing_store.renew_filing(own)
    await asyncio.sleep(0.6)  # 1.2 s after the claim, 0.6 s after its renewal: held
    assert await filing_store.claim_filing(own, public, 1.0) is None
    await filing_store.release_filing(own)
    await filing_store.renew_filing(own)  # a renewal late, after the release
    assert await filing_store.claim_filing(own, public, 1.0) == public
