"""The default branch a job names, as the dashboard takes it (bot/run/pipeline.py ``default_branch``): a name no
branch can have is not taken (the dashboard caches it and reads config at it, a request path), and a tick's own
job names its edit's branch, so a tick run by a process that has not seen the edit reads config there.
Also: a dashboard note is clipped to what GitHub takes, by the GitHub client's outgoing clip, its marker kept."""

from __future__ import annotations

from typing import Any

import pytest

from bot.core import dashboard as D
from bot.core.defuse import GITHUB_LIMIT
from bot.core.markers import marker
from bot.github.writes import digest
from bot.run import dashboard, pipeline
from bot.sandbox.team import Team
from bot.store import Job
from tests.board_setup import Clock, board, clock, post, waiting_board  # noqa: F401
from tests.conftest import INSTALLATION
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, send, team  # noqa: F401

NOT_AUTHOR = "dashboard: true\napproval: {not_author: true}\n"  # shows on the board: "other than the ... author"


@pytest.mark.parametrize("name", ["main/../../x", "..", "a..b", "refs/heads/main", "@", "x" * 256, "a b", "a~1",
                                  "a:b", "a\\b", "a^", "a?", "a*", "a[", "/a", "a/", "a.lock", "", 7, None])
def test_a_name_no_branch_can_have_is_not_taken(name: Any) -> None:
    assert pipeline.default_branch({"repository": {"default_branch": name}}) is None
    assert pipeline.default_branch({"default_branch": name}) is None  # a tick's job


@pytest.mark.parametrize("name", ["main", "trunk", "release/2.x", "feature-ü"])
def test_a_branch_name_is_taken_as_named(name: str) -> None:
    assert pipeline.default_branch({"repository": {"default_branch": name}}) == name
    assert pipeline.default_branch({"default_branch": name}) == name


async def test_a_delivery_naming_a_hostile_branch_is_not_read_at_it(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """Taken, the name would be cached and the dashboard's refresh would read its config as
    ``contents/...?ref=master/../../x``; not taken, GitHub is asked only about branches it named."""
    clock.later()
    p = comment_payload(15, "thanks", login="someone")
    p["repository"]["default_branch"] = "master/../../x"
    seen = len(sandbox.requests)
    await post(bot, sandbox, "issue_comment", p)
    refreshed = f"/repos/{REPO}/issues/{waiting_board['number']}"  # the refresh reads the board before its edit
    assert [r.path for r in sandbox.requests[seen:] if r.method == "GET" and r.path == refreshed]
    assert not [r for r in sandbox.requests if ".." in r.path or ".." in str(r.query)]


async def test_a_ticks_job_reads_config_on_the_branch_its_payload_names(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """The branch was renamed to ``trunk`` (its config differs); this process still holds ``master`` (within
    ``BRANCH_TTL``), as one that did not see the edit would: the tick's job names ``trunk``, and the dashboard it
    refreshes is read there."""
    sandbox.set_file(REPO, ".github/triage-lead.yml", NOT_AUTHOR, ref="trunk")
    sandbox.repo(REPO).data["default_branch"] = "trunk"
    clock.later()
    box = "cancel:no-such-run::"
    job = Job(id=0, delivery_id=f"edit-7:{digest(box)}", thread=f"{REPO}#77", event=D.TICK_EVENT, attempts=1,
              payload={"repo": REPO, "installation_id": INSTALLATION, "box": box, "thread": f"{REPO}#77",
                       "dashboard": waiting_board["number"], "written_at": None, "default_branch": "trunk",
                       "sender": {"login": "maintainer", "id": 1, "type": "User"}})
    await pipeline.process(job, bot[0].deps)
    assert "other than the pull request's author" in board(sandbox)["body"]


async def test_a_dashboard_note_longer_than_github_takes_is_clipped_and_keeps_its_marker(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """Cut to what GitHub takes, saying so, with its marker kept: a later note with the same mark edits it."""
    rt, _ = bot
    gh = await rt.deps.github.installation(INSTALLATION)
    number, mark = waiting_board["number"], marker("note", REPO, "long")
    await dashboard._note(gh, rt.deps, REPO, number, "maintainer", "word " * 20_000, mark=mark)
    before = len(sandbox.comments(REPO, number))
    body = str(sandbox.comments(REPO, number)[-1]["body"])
    assert body.startswith("word word") and len(body) <= GITHUB_LIMIT
    assert "longer than GitHub allows" in body and body.rstrip().endswith(mark)
    clock.later()
    await dashboard._note(gh, rt.deps, REPO, number, "maintainer", "short now", mark=mark)
    assert len(sandbox.comments(REPO, number)) == before
    assert str(sandbox.comments(REPO, number)[-1]["body"]).startswith("short now")
