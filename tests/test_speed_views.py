"""A repository's view (its config and agent files) is read once for every job that needs it at the same time
(issue 16: GitHub reads per run): a burst of deliveries on one repository does not read its files once per job.
Through the real GitHub client against the sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gidgethub.abc import GitHubAPI

from bot.run.repo_view import RepoView, RepoViews
from tests.conftest import INSTALLATION
from tests.test_workflows_e2e import bot, fake, team  # noqa: F401  (the e2e bot, its model server and team)

REPO = "Codertocat/Hello-World"
CONFIG = f"/repos/{REPO}/contents/.github/triage-lead.yml"


def config_reads(sandbox: Any) -> int:
    return sum(1 for r in sandbox.requests if r.method == "GET" and r.path.split("?")[0] == CONFIG)


async def test_jobs_that_need_a_view_at_once_share_one_read(bot: Any, sandbox: Any) -> None:
    rt, _ = bot
    sandbox.set_file(REPO, ".github/triage-lead.yml", "escalation_mentions: ['@o/team']\n")
    views = RepoViews(rt.catalog, rt.store)
    gh = await rt.github.installation(INSTALLATION)
    before = config_reads(sandbox)
    got = await asyncio.gather(*(views.get(gh, REPO, "master") for _ in range(6)))
    assert config_reads(sandbox) - before == 1
    assert all(v is got[0] for v in got) and got[0].config.escalation_mentions == ("@o/team",)
    await views.get(gh, REPO, "master")  # kept, as before
    assert config_reads(sandbox) - before == 1


async def test_a_failed_load_fails_its_waiters_and_is_not_kept(bot: Any, sandbox: Any) -> None:
    rt, _ = bot
    views = RepoViews(rt.catalog, rt.store)
    gh = await rt.github.installation(INSTALLATION)
    calls = 0
    load = views._load

    async def failing(gh: GitHubAPI, repo: str, branch: str) -> RepoView:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0)
            raise RuntimeError("GitHub is down")
        return await load(gh, repo, branch)

    views._load = failing  # type: ignore[method-assign]
    results = await asyncio.gather(*(views.get(gh, REPO, "master") for _ in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [RuntimeError] * 3 and calls == 1
    assert (await views.get(gh, REPO, "master")).catalog is not None and calls == 2  # the next job reads again


async def test_a_cancelled_caller_leaves_the_load_to_the_others(bot: Any, sandbox: Any) -> None:
    rt, _ = bot
    views = RepoViews(rt.catalog, rt.store)
    gh = await rt.github.installation(INSTALLATION)
    before = config_reads(sandbox)
    first = asyncio.ensure_future(views.get(gh, REPO, "master"))
    second = asyncio.ensure_future(views.get(gh, REPO, "master"))
    await asyncio.sleep(0)
    first.cancel()
    view = await second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert view.catalog is not None and config_reads(sandbox) - before == 1
