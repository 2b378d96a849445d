"""A run's status comment comes first on its thread: a pull request's verdict comment (the PR's own review, a write
the run's first actions hold) is never posted above it. Through the webhook, against the sandbox GitHub."""

from __future__ import annotations

from typing import Any

from bot.core.markers import markers_in
from bot.sandbox.team import Team
from tests.test_converging_reviews import DB_A, FETCHALL, model_warns, verdict_comments
from tests.test_verdicts import pull_with
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401


async def test_the_status_comment_precedes_the_pull_requests_verdict_comment(bot: Any, sandbox: Any,
                                                                            team: Team) -> None:
    p = pull_with(sandbox, 71, {"app/db.py": DB_A})
    team.script["PULL REQUEST REVIEW"] = [model_warns((FETCHALL, "app/db.py", 6))]
    await send(bot, sandbox, "pull_request", p)
    [verdict] = verdict_comments(sandbox, 71)
    [status] = [c for c in sandbox.comments(REPO, 71) if any(k.startswith("status:") for k in markers_in(c["body"]))]
    assert status["id"] < verdict["id"] and status["created_at"] <= verdict["created_at"]
    first = sandbox.comments(REPO, 71)[0]
    assert first["id"] == status["id"]  # the first comment of the thread
