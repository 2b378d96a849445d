"""Each kind of GitHub call, failing once with a transient error: the work is never lost, never doubled.

A pull request runs backend-feature (its review posts a pull-request review, a check run and a tech-debt
issue), then `/approve` delivers the change as a draft pull request through the Git data API. Each kind
of call the bot makes on the way fails once: with a 502 before anything happened, and with a 502 *after*
the write landed (the answer was lost on its way back), the case GitHub's lack of idempotency keys makes
hard. Every variant must end exactly like an undisturbed run: the same comments, one review, one check
run, one tech-debt issue, one draft pull request, and no job failed.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from bot.sandbox.team import result
from tests.test_faults import HookTeam, assert_nothing_posted_twice, team  # noqa: F401
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, posts, pr_payload, send  # noqa: F401

R = rf"/repos/{REPO}"
EXPECTED = {"review": 1, "check_run": 1, "issue": 1, "pull": 1}  # one gate review and check, one debt, one PR
CALLS = {  # kind of call → (method, path pattern)
    "token": ("POST", r"/app/installations/\d+/access_tokens"),
    "read": ("GET", rf"{R}/pulls/\d+/files"),
    "comment": ("POST", rf"{R}/issues/\d+/comments"),
    "comment-edit": ("PATCH", rf"{R}/issues/comments/\d+"),
    "issue": ("POST", rf"{R}/issues"),
    "review": ("POST", rf"{R}/pulls/\d+/reviews"),
    "check-run": ("POST", rf"{R}/check-runs"),
    "git-tree": ("POST", rf"{R}/git/trees"),
    "git-commit": ("POST", rf"{R}/git/commits"),
    "git-ref": ("POST", rf"{R}/git/refs"),
    "pull": ("POST", rf"{R}/pulls"),
}


async def run(bot: Any, sandbox: Any, team: HookTeam) -> dict[str, Any]:
    """The whole story on PR 30; what it left on GitHub, counted."""
    sandbox.set_permission(REPO, "maintainer", "write")
    team.script["REVIEW"] = [result("review", suggestions=[{"text": "Split the handler", "path": "app/fix.py"}])]
    await send(bot, sandbox, "pull_request", pr_payload(sandbox, 30, ["api"]))
    await send(bot, sandbox, "issue_comment", comment_payload(30, "/approve", pull=True))
    kinds = Counter(w.kind for w in sandbox.writes if w.kind in ("review", "check_run", "issue", "pull"))
    return {"posts": posts(sandbox, 30), "writes": dict(kinds), "jobs": await bot[0].store.job_states()}


@pytest.fixture
async def undisturbed(bot: Any, sandbox: Any, team: HookTeam) -> dict[str, Any]:
    return await run(bot, sandbox, team)


def test_the_undisturbed_story_touches_every_kind_of_call(undisturbed: dict[str, Any], sandbox: Any) -> None:
    for kind, (method, pattern) in CALLS.items():
        assert any(r.method == method and re.fullmatch(pattern, r.path) for r in sandbox.requests), kind
    assert undisturbed["writes"] == EXPECTED
    assert undisturbed["posts"][-1] == "done" and undisturbed["jobs"] == {"done": 2}



@pytest.mark.parametrize("landed", [False, True], ids=["before", "after-it-landed"])
@pytest.mark.parametrize("kind", sorted(CALLS))
async def test_one_transient_failure_of_each_kind_of_call(kind: str, landed: bool, bot: Any, sandbox: Any,
                                                          team: HookTeam) -> None:
    method, pattern = CALLS[kind]
    if landed and method == "GET":
        pytest.skip("a read has nothing to land")
    sandbox.fail(method, pattern, 502, landed=landed)
    story = await run(bot, sandbox, team)
    assert any(r.status == 502 for r in sandbox.requests), "the fault never fired: vacuous"
    assert story["jobs"] == {"done": 2}, story
    assert story["posts"][-1] == "done" and "status" in story["posts"]
    assert story["writes"] == EXPECTED, story["writes"]
    assert_nothing_posted_twice(sandbox)
