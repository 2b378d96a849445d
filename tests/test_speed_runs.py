"""GitHub reads a run does not need (issue 16: requests per run): the repository read the delivery answers already,
and the issue read again before every step of one job. Through the real GitHub client against the sandbox."""

from __future__ import annotations

from typing import Any

from bot.sandbox.team import Team
from tests.test_workflows_e2e import REPO, bot, fake, issue_payload, posts, send, team  # noqa: F401


def gets(sandbox: Any, path: str) -> int:
    return sum(1 for r in sandbox.requests if r.method == "GET" and r.path.split("?")[0] == path)


# ---- a work item names its repository's default branch ---------------------------------------------------------

async def test_a_run_starts_without_reading_the_repository_the_delivery_describes(bot: Any, sandbox: Any,
                                                                                  team: Team) -> None:
    await send(bot, sandbox, "issues", issue_payload(10, ["api"]))
    assert posts(sandbox, 10)[-1] == "approval"  # the whole run, to its approval wait
    assert gets(sandbox, f"/repos/{REPO}") == 0


async def test_a_delivery_without_the_default_branch_reads_it_from_github(bot: Any, sandbox: Any, team: Team) -> None:
    p = issue_payload(10, ["api"])
    sandbox.seed_from_payload(p)
    del p["repository"]["default_branch"]
    await send(bot, sandbox, "issues", p)
    assert posts(sandbox, 10)[-1] == "approval"
    assert gets(sandbox, f"/repos/{REPO}") == 1


async def test_the_steps_of_one_job_read_their_issue_once(bot: Any, sandbox: Any, team: Team) -> None:
    await send(bot, sandbox, "issues", issue_payload(10, ["api"]))
    assert [k for k in posts(sandbox, 10) if k.startswith(("step:", "verdict:"))] == [
        "step:triage:1", "step:architecture:1", "step:implementation:1", "verdict:review:1"]
    assert gets(sandbox, f"/repos/{REPO}/issues/10") == 1
