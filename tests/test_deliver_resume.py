"""Delivering an approved change again after a crash: the bot finds its own commit by the run's git trailer
(``Triage-Lead-Run: <run id>``) instead of committing twice, and never takes someone else's commit for it.

``deliver`` is called directly, through the real gidgethub client over HTTP against the sandbox GitHub, with
the real SQLite store; a crash between GitHub's answer and the store's record is simulated by deleting the
``delivered:`` record, by a failed request, or by a sandbox that applies a ref update and loses the answer.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from gidgethub import GitHubBroken

from bot.core.markers import marker
from bot.github.changes import RUN_TRAILER, BranchMoved, deliver, trailers
from bot.github.client import GitHub
from bot.sandbox.github import SandboxGitHub
from bot.sandbox.github_state import ApiError
from bot.store import Store, open_store
from tests.conftest import APP_ID, INSTALLATION

REPO = "Codertocat/deliver-test"
BRANCH = "fix-ci"
RUN = "5c1d1a3e-0f7b-4c3a-9d8e-2b6f4a7c9e10"
FILES = [{"path": "app/fix.py", "content": "def fix():\n    return 1\n"}]
PR_CTX = {"repo": REPO, "number": 2, "is_pull_request": True, "head_ref": BRANCH, "head_repo": REPO,
          "from_fork": False, "default_branch": "main"}
ISSUE_CTX = {"repo": REPO, "number": 7, "is_pull_request": False, "default_branch": "main"}


class LosingSandbox(SandboxGitHub):
    """A sandbox whose next ref update, once armed, lands, is followed by someone else's push on top, and is
    answered 502: the bot never hears that its update landed, and its retry is no fast forward any more."""

    lose_next_update = False

    def h_update_ref(self, rq: web.Request) -> Any:
        answer = super().h_update_ref(rq)
        if not self.lose_next_update:
            return answer
        self.lose_next_update = False
        self.set_file(REPO, "theirs.txt", "theirs\n", ref=rq.match_info["ref"].removeprefix("heads/"),
                      message="Someone else's push")
        raise ApiError(502, "Bad Gateway")


@pytest.fixture
async def sandbox(app_keys: tuple[str, str], github_openapi: Any) -> AsyncIterator[LosingSandbox]:
    """conftest's sandbox, as the subclass above (it behaves the same until armed)."""
    gh = LosingSandbox(app_id=APP_ID, app_public_key_pem=app_keys[1], validator=github_openapi)
    await gh.start()
    gh.add_installation(INSTALLATION, "Codertocat")
    gh.add_repo(REPO, installation_id=INSTALLATION)
    gh.add_pull(REPO, title="CI is red", head_ref=BRANCH, number=2)
    yield gh
    await gh.close()
    assert not gh.conformance_errors, "requests that GitHub's REST description does not allow:\n" + "\n".join(
        dict.fromkeys(gh.conformance_errors))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "x.sqlite3"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    s = await open_store("sqlite:///" + str(db))
    yield s
    await s.close()


@pytest.fixture
async def gh(sandbox: LosingSandbox) -> AsyncIterator[GitHub]:
    async with aiohttp.ClientSession() as session:
        yield GitHub(session, oauth_token=sandbox.mint_token(INSTALLATION), base_url=sandbox.url, backoff=0.01)


def forget_delivery(db: Path) -> None:
    """The process died after GitHub took the change and before the store recorded it."""
    with sqlite3.connect(db) as conn:
        assert conn.execute("DELETE FROM posted WHERE marker = ?", (marker("delivered", RUN),)).rowcount == 1


def head(sandbox: LosingSandbox, branch: str) -> str:
    return sandbox.repo(REPO).refs[f"refs/heads/{branch}"]


async def push_fix(gh: GitHub, store: Store, approved: str) -> str | None:
    _, pushed = await deliver(gh, store, run_id=RUN, ctx=PR_CTX, files=FILES, workflow="error-investigation",
                              title="Fix the failing check", base_sha=approved)
    return pushed


async def open_draft(gh: GitHub, store: Store) -> str | None:
    url, _ = await deliver(gh, store, run_id=RUN, ctx=ISSUE_CTX, files=FILES, workflow="backend-feature",
                           title="Add the endpoint")
    return url


async def test_a_push_that_landed_unrecorded_is_found_not_repeated(
        sandbox: LosingSandbox, gh: GitHub, store: Store, db: Path) -> None:
    approved = head(sandbox, BRANCH)
    first = await push_fix(gh, store, approved)
    forget_delivery(db)
    again = await push_fix(gh, store, approved)  # before the trailer: a second commit, then "not a fast forward"
    assert again == first == head(sandbox, BRANCH)
    assert len(sandbox.written("commit")) == 1 and len(sandbox.written("ref_update")) == 1
    assert (await store.find_posted(marker("delivered", RUN))).url == first  # type: ignore[union-attr]
    assert sandbox.file_content(REPO, "app/fix.py", ref=BRANCH) == FILES[0]["content"]


async def test_the_commit_names_its_run_in_a_git_trailer(sandbox: LosingSandbox, gh: GitHub, store: Store) -> None:
    sha = await push_fix(gh, store, head(sandbox, BRANCH))
    message = (await gh.getitem(f"/repos/{REPO}/git/commits/{sha}"))["message"]
    assert message.rstrip("\n").endswith(f"\n\n{RUN_TRAILER}: {RUN}")
    assert trailers(message) == [(RUN_TRAILER, RUN)]
    if shutil.which("git"):  # git itself reads it as a trailer
        parsed = subprocess.run(["git", "interpret-trailers", "--parse"], input=message, capture_output=True,
                                text=True, check=True).stdout
        assert parsed == f"{RUN_TRAILER}: {RUN}\n"


async def test_a_draft_pull_resumed_after_its_branch_was_pushed(
        sandbox: LosingSandbox, gh: GitHub, store: Store, db: Path) -> None:
    sandbox.fail("POST", rf"/repos/{REPO}/pulls", 502)  # the branch is pushed, then the step dies
    with pytest.raises(GitHubBroken):
        await open_draft(gh, store)
    url = await open_draft(gh, store)
    forget_delivery(db)  # and once more: the PR opened, its record lost
    assert await open_draft(gh, store) == url
    branch = f"triage-lead/{RUN[:18]}"
    assert [w.data["ref"] for w in sandbox.written("ref")] == [f"refs/heads/{branch}"]
    assert sandbox.written("ref_update") == []  # the first attempt's commit kept, not force-pushed over
    assert [w.data["sha"] for w in sandbox.written("commit")] == [head(sandbox, branch)]
    assert len(sandbox.written("pull")) == 1
    assert sandbox.file_content(REPO, "app/fix.py", ref=branch) == FILES[0]["content"]


async def test_a_branch_moved_by_someone_else_still_refuses_the_fix(
        sandbox: LosingSandbox, gh: GitHub, store: Store) -> None:
    approved = head(sandbox, BRANCH)
    sandbox.set_file(REPO, "a.txt", "a\n", ref=BRANCH, message=f"Mentions {RUN_TRAILER}: {RUN}\n\nin passing")
    sandbox.set_file(REPO, "b.txt", "b\n", ref=BRANCH, message=f"Another run's fix\n\n{RUN_TRAILER}: other-run")
    theirs = head(sandbox, BRANCH)
    with pytest.raises(BranchMoved) as refused:
        await push_fix(gh, store, approved)
    assert refused.value.sha == theirs  # the run makes its change again on this head
    assert head(sandbox, BRANCH) == theirs and sandbox.written("commit") == []
    assert await store.find_posted(marker("delivered", RUN)) is None


async def test_a_refused_update_that_was_ours_after_all_is_done(
        sandbox: LosingSandbox, gh: GitHub, store: Store) -> None:
    approved = head(sandbox, BRANCH)
    sandbox.lose_next_update = True  # lands, someone pushes on top, 502; the retried PATCH answers 422
    pushed = await push_fix(gh, store, approved)
    ours = [w.data["sha"] for w in sandbox.written("commit")]
    assert [pushed] == ours and head(sandbox, BRANCH) != pushed
    assert sandbox.obj(head(sandbox, BRANCH), "commit")["parents"] == ours  # on the branch, under their push
    assert (await store.find_posted(marker("delivered", RUN))).url == pushed  # type: ignore[union-attr]
