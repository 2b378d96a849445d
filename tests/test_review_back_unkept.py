"""Back at a head judged before, the cases 3b8ca84's return left open (tests/test_attacks_converge3.py): whose
dismissal a return may undo (only the App's own, which the store remembers), what is given again when the run no
longer keeps the head's verdict (its check run's conclusion, never a second model opinion), and a GitHub answer
naming a judged head while the push named another (not a return).
"""

from __future__ import annotations

from typing import Any

from bot.run import pull_review
from bot.sandbox.team import Team, result
from tests.test_attacks_converge3 import approved_then_key
from tests.test_attacks_verdicts import rewrite_answers, send_pull
from tests.test_review_back_to_head import a_then_b, model_calls, states
from tests.test_review_return import force_push
from tests.test_verdicts import pull_with
from tests.test_workflows_e2e import REPO, bot, fake, send, team  # noqa: F401

TESTS = {"tests/test_a.py": "def test_a():\n    assert 1\n"}


async def test_a_maintainer_dismissing_the_approval_given_again_is_not_overruled(
        bot: Any, sandbox: Any, team: Team) -> None:
    """A -> B -> A gives A's approval again; a maintainer dismisses that one; -> B -> A: not given a third time."""
    _, a, b = await approved_then_key(bot, sandbox, 580)
    await send_pull(bot, sandbox, force_push(sandbox, 580, a))
    again = sandbox.reviews(REPO, 580)[-1]
    assert (again["state"], again["commit_id"]) == ("APPROVED", a)
    again["state"] = "DISMISSED"  # by a maintainer
    await send_pull(bot, sandbox, force_push(sandbox, 580, b))
    await send_pull(bot, sandbox, force_push(sandbox, 580, a))
    assert [s for s in states(sandbox, 580) if s == ("APPROVED", a)] == [], states(sandbox, 580)


async def installation(bot: Any, p: dict[str, Any]) -> Any:
    return await bot[0].deps.github.installation(p["installation"]["id"])


async def test_back_at_a_head_whose_verdict_is_no_longer_kept_gives_its_check_runs_conclusion(
        bot: Any, sandbox: Any, team: Team) -> None:
    """The run no longer keeps A's verdict (bot/run/writes.py keeps 5): :func:`back_unkept` asks no model and gives
    again what A's check run says, a change request here, and B's approval is dismissed."""
    team.script["PULL REQUEST REVIEW"] = [result("review", verdict="REJECTED", critical=[
        {"text": "the password check always returns True", "path": "app/a.py", "line": 1}]), result("review")]
    p = pull_with(sandbox, 581, {"app/a.py": "def ok(p):\n    return True\n", **TESTS})
    a, b = await a_then_b(bot, sandbox, p, "app/a.py", "def ok(p):\n    return p == 1\n")
    force_push(sandbox, 581, a)
    calls, deps = model_calls(team), bot[0].deps
    assert await pull_review.reviewed_before(deps.store, REPO, 581, a)
    await pull_review.back_unkept(await installation(bot, p), deps.store, REPO, 581, a, deps.bot_login)
    assert states(sandbox, 581) == [("DISMISSED", a), ("DISMISSED", b), ("CHANGES_REQUESTED", a)]
    assert model_calls(team) == calls


async def test_back_at_a_head_whose_check_run_cannot_be_read_gives_nothing_again(
        bot: Any, sandbox: Any, team: Team) -> None:
    """A approved, B with a key; back at A without A's verdict kept and A's check run unreadable: no approval from
    a guess, B's change request dismissed all the same."""
    p, a, b = await approved_then_key(bot, sandbox, 582)
    force_push(sandbox, 582, a)
    rewrite_answers(sandbox, "GET", rf"/repos/{REPO}/check-runs/\d+", lambda data, rq: {"id": data["id"]})
    deps = bot[0].deps
    await pull_review.back_unkept(await installation(bot, p), deps.store, REPO, 582, a, deps.bot_login)
    assert states(sandbox, 582) == [("DISMISSED", a), ("DISMISSED", b)]


async def test_a_head_read_is_stale_only_when_judged_before_and_not_the_one_pushed(
        bot: Any, sandbox: Any, team: Team) -> None:
    p = pull_with(sandbox, 583, {"app/a.py": "X = 1\n", **TESTS})
    a = p["pull_request"]["head"]["sha"]
    await send_pull(bot, sandbox, p)
    store = bot[0].deps.store
    assert await pull_review.stale_read(store, REPO, 583, a, "c" * 40)
    assert not await pull_review.stale_read(store, REPO, 583, a, a)
    assert not await pull_review.stale_read(store, REPO, 583, a, None)  # the delivery named none: nothing to doubt
    assert not await pull_review.stale_read(store, REPO, 583, "d" * 40, "c" * 40)  # a head never judged: a new one
