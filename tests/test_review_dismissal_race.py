"""A maintainer dismisses the App's approval of head A in the moment between the App's listing of the reviews and its
own dismissal of it (a new head B was pushed). GitHub answers the App's PUT 422 "Can not dismiss a dismissed pull
request review", so the dismissal is not the App's and is not noted as one: back at A (B force-pushed away), A's
approval is not given again over the maintainer's head."""

from __future__ import annotations

from typing import Any

import pytest

from bot.run import own_reviews
from bot.sandbox.team import Team
from tests.test_attacks_converge3 import TESTS
from tests.test_attacks_verdicts import send_pull
from tests.test_review_back_to_head import states
from tests.test_review_return import force_push
from tests.test_verdicts import pull_with, push
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401


async def test_a_maintainers_dismissal_racing_the_apps_is_not_taken_for_the_apps(
        bot: Any, sandbox: Any, team: Team, monkeypatch: pytest.MonkeyPatch) -> None:
    p = pull_with(sandbox, 571, {"app/a.py": "X = 1\n", **TESTS})
    a = p["pull_request"]["head"]["sha"]
    await send_pull(bot, sandbox, p)
    assert ("APPROVED", a) in states(sandbox, 571)
    app_dismiss, raced = own_reviews.dismiss, []

    async def maintainer_first(gh: Any, store: Any, repo: str, number: int, review: dict[str, Any],
                               sha: str) -> None:
        for shown in sandbox.reviews(REPO, number):  # the maintainer's PUT lands just before the App's
            if shown["id"] == review["id"]:
                shown["state"] = "DISMISSED"
                raced.append(shown["id"])
        await app_dismiss(gh, store, repo, number, review, sha)

    monkeypatch.setattr(own_reviews, "dismiss", maintainer_first)
    await send_pull(bot, sandbox, push(sandbox, p, "app/a.py", "X = 2\n"))
    assert raced, "the App never went to dismiss A's approval: the race was not run"
    monkeypatch.setattr(own_reviews, "dismiss", app_dismiss)
    await send_pull(bot, sandbox, force_push(sandbox, 571, a))
    assert ("APPROVED", a) not in states(sandbox, 571), states(sandbox, 571)
