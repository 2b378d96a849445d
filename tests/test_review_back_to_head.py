"""Back to a head judged before (issue 17, point 2: "each head gets its own review, referring to the thread
comment"), through the webhook against the sandbox. A → B → A: B's review dismissed A's approval or change request,
and GitHub cannot undo a dismissal; back at A, the pull request's review decision must be A's verdict again (its
check run says so already), so A's verdict is given again in a short review pointing to the thread comment, without
a second model review. A COMMENT verdict was never dismissed and is not repeated; a redelivery adds nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.run.pull_review import Verdict, judged_marker, post
from bot.sandbox.team import Team
from tests.test_attacks_verdicts import KEY, send_pull
from tests.test_converging_reviews import bot_reviews, verdict_comments
from tests.test_review_return import force_push, real_files, seed_without_patch
from tests.test_verdicts import pull_with, push
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401


async def a_then_b(bot: Any, sandbox: Any, p: dict[str, Any], path: str, b_code: str) -> tuple[str, str]:
    """Pull request ``p`` judged at its head A, then a push of ``b_code`` to ``path`` judged at B: (A, B)."""
    a = p["pull_request"]["head"]["sha"]
    await send_pull(bot, sandbox, p)
    b_push = push(sandbox, p, path, b_code)
    await send_pull(bot, sandbox, b_push)
    return a, b_push["pull_request"]["head"]["sha"]

TESTS = {"tests/test_a.py": "def test_a():\n    assert 1\n"}


def states(sandbox: Any, number: int) -> list[tuple[str, str]]:
    """(state, head) of each review on the pull request, oldest first."""
    return [(r["state"], r["commit_id"]) for r in sandbox.reviews(REPO, number)]


def model_calls(team: Team) -> int:
    return sum(c.title == "PULL REQUEST REVIEW" for c in team.calls)


async def test_back_at_a_head_whose_change_request_was_dismissed_requests_changes_again(
        bot: Any, sandbox: Any, team: Team) -> None:
    """A: a credential (changes requested); B: the key taken out (approved, A's change request dismissed); back to
    A: changes requested again at A, pointing to the thread comment, B's approval dismissed; back to B: approved
    again. Each return is one review; a redelivery adds none."""
    p = pull_with(sandbox, 540, {"app/a.py": KEY + "\n", **TESTS})
    a, b = await a_then_b(bot, sandbox, p, "app/a.py", "KEY = None\n")
    assert states(sandbox, 540) == [("DISMISSED", a), ("APPROVED", b)]
    calls = model_calls(team)

    await send_pull(bot, sandbox, force_push(sandbox, 540, a))
    assert states(sandbox, 540) == [("DISMISSED", a), ("DISMISSED", b), ("CHANGES_REQUESTED", a)]
    again = bot_reviews(sandbox)[-1]
    assert again["event"] == "REQUEST_CHANGES" and again["commit_id"] == a and not again.get("comments")
    [thread] = verdict_comments(sandbox, 540)
    assert thread["html_url"] in again["body"] and f"back at `{a[:12]}`" in again["body"], again["body"]
    assert "**Open** (1)" in thread["body"] and "exposed credential" in thread["body"], thread["body"]
    assert "AKIAIOSFODNN7EXAMPLE" not in again["body"]
    assert model_calls(team) == calls  # A's verdict, kept by the run: given again, never judged again
    assert (await bot[0].deps.store.load_findings(REPO, 540)).sha == a

    await send_pull(bot, sandbox, force_push(sandbox, 540, a))  # delivered again: A's change request stands
    assert len(states(sandbox, 540)) == 3
    # The process died after giving A's verdict again, before recording the return: the retry gives it once.
    deps = bot[0].deps
    kept = await deps.store.load_findings(REPO, 540)
    await deps.store.save_findings(dataclasses.replace(kept, sha=b))
    record = await deps.store.load_run((await deps.store.find_posted(judged_marker(REPO, 540))).url)
    gh = await deps.github.installation(p["installation"]["id"])
    await post(gh, deps.store, repo=REPO, number=540, verdict=Verdict(**record.data["pr_verdicts"][a]),
               bot_login=deps.bot_login, app_id=None)
    assert len(states(sandbox, 540)) == 3 and (await deps.store.load_findings(REPO, 540)).sha == a

    await send_pull(bot, sandbox, force_push(sandbox, 540, b))
    assert states(sandbox, 540)[3:] == [("APPROVED", b)] and states(sandbox, 540)[2] == ("DISMISSED", a)
    assert model_calls(team) == calls


async def test_back_at_an_approved_head_without_findings_approves_it_again(
        bot: Any, sandbox: Any, team: Team) -> None:
    """No finding ever, so no thread comment: A approved, B approved (A's approval dismissed), back to A."""
    p = pull_with(sandbox, 541, {"app/a.py": "X = 1\n", **TESTS})
    a, b = await a_then_b(bot, sandbox, p, "app/a.py", "X = 2\n")
    await send_pull(bot, sandbox, force_push(sandbox, 541, a))
    assert states(sandbox, 541) == [("DISMISSED", a), ("DISMISSED", b), ("APPROVED", a)]
    assert verdict_comments(sandbox, 541) == [] and "Every finding" not in bot_reviews(sandbox)[-1]["body"]
    await send_pull(bot, sandbox, force_push(sandbox, 541, a))  # delivered again
    assert len(states(sandbox, 541)) == 3
    await send_pull(bot, sandbox, force_push(sandbox, 541, b))  # and on to B again: B's approval given again
    assert states(sandbox, 541)[2:] == [("DISMISSED", a), ("APPROVED", b)]


async def test_back_at_a_head_judged_anew_as_a_comment_adds_no_comment(bot: Any, sandbox: Any, team: Team) -> None:
    """A approved, B approved; A's verdict then judged anew as a COMMENT (no model: its budget spent; here the
    verdict the run keeps is edited to one): a COMMENT does not make the review decision and is not given again."""
    p = pull_with(sandbox, 544, {"app/a.py": "X = 1\n", **TESTS})
    a = p["pull_request"]["head"]["sha"]
    await send_pull(bot, sandbox, p)
    await send_pull(bot, sandbox, push(sandbox, p, "app/a.py", "X = 2\n"))
    store = bot[0].deps.store
    record = await store.load_run((await store.find_posted(judged_marker(REPO, 544))).url)
    record.data["pr_verdicts"][a]["event"] = "COMMENT"
    await store.save_run(record)
    await send_pull(bot, sandbox, force_push(sandbox, 544, a))
    assert [s for s, _ in states(sandbox, 544)] == ["DISMISSED", "DISMISSED"], states(sandbox, 544)


async def test_back_at_a_head_whose_verdict_was_a_comment_posts_nothing_more(
        bot: Any, sandbox: Any, team: Team) -> None:
    """A: a file GitHub shows no diff of (a COMMENT: a person must review; never dismissed); B approved; back to A:
    A's comment still stands, and B's approval is dismissed."""
    p = pull_with(sandbox, 542, {"app/gen.py": "X = 1\n", **TESTS})
    a = p["pull_request"]["head"]["sha"]
    seed_without_patch(sandbox, 542, "app/gen.py")
    await send_pull(bot, sandbox, p)
    real_files(sandbox, 542)
    b_push = push(sandbox, p, "app/gen.py", "X = 2\n")
    await send_pull(bot, sandbox, b_push)
    b = b_push["pull_request"]["head"]["sha"]
    assert states(sandbox, 542) == [("COMMENTED", a), ("APPROVED", b)], states(sandbox, 542)
    sync = force_push(sandbox, 542, a)
    seed_without_patch(sandbox, 542, "app/gen.py")
    await send_pull(bot, sandbox, sync)
    assert states(sandbox, 542) == [("COMMENTED", a), ("DISMISSED", b)]


async def test_back_at_a_head_of_the_apps_own_pull_request_repeats_nothing(
        bot: Any, sandbox: Any, team: Team) -> None:
    """GitHub refuses a change request on the App's own pull request: A's verdict was posted as a COMMENT, which
    no later head dismissed; back at A nothing is given again (it would be one more COMMENT per return)."""
    p = pull_with(sandbox, 543, {"app/a.py": KEY + "\n", **TESTS})
    a = p["pull_request"]["head"]["sha"]
    sandbox.get_issue(sandbox.repo(REPO), 543, pull=True)["user"] = {"login": sandbox.bot_login, "type": "Bot"}
    await send_pull(bot, sandbox, p)
    await send_pull(bot, sandbox, push(sandbox, p, "app/a.py", "KEY = None\n"))
    await send_pull(bot, sandbox, force_push(sandbox, 543, a))
    assert [s for s, _ in states(sandbox, 543)] == ["COMMENTED", "COMMENTED"], states(sandbox, 543)
