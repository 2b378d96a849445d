"""Attacks on the dashboard issue (issue 17, point 1), as an outsider with read access, or as a page left open
too long, would make them: through the webhook, against the sandbox GitHub and the local Messages API.

What must hold: a reader's edits and ticks change no run and cost at most one note; a box does what it said when
it was shown (the head it names, the escalation it offered, the budget wait it lifted), once; text anyone wrote
(titles) can neither add a box nor hide the dashboard's marker.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.core import dashboard as D
from bot.core.markers import trailing, with_marker
from bot.run.dashboard_board import mark_of
from bot.sandbox.team import Team
from tests.board_setup import (  # noqa: F401
    Clock,
    board,
    box_of,
    clock,
    deliver,
    edited,
    opted_in,
    tick,
    ticked,
    waiting_board,
    waiting_run,
)
from tests.test_workflows_e2e import (  # noqa: F401
    REPO,
    bot,
    comment_payload,
    fake,
    issue_payload,
    posts,
    send,
    team,
)


def planted(body: str, *lines: str) -> str:
    """``body`` with ``lines`` added before the dashboard's marker (an edit by whoever can edit the issue)."""
    end = body.rindex("\n\n<!-- triage-lead:")
    return body[:end] + "".join(f"\n{line}" for line in lines) + body[end:]


def plant(sandbox: Any, *lines: str) -> int:
    """An edit of the dashboard that adds ``lines`` and ticks nothing (it acts on nothing): its number."""
    dash = board(sandbox)
    sandbox.repo(REPO).issues[dash["number"]]["body"] = planted(dash["body"], *lines)
    return int(dash["number"])


async def test_a_readers_ticks_of_every_box_again_and_again_cost_one_note(bot: Any, sandbox: Any, team: Team,
                                                                          clock: Clock, waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    await send(bot, sandbox, "issues", issue_payload(45, ["api"]))
    clock.later()
    await send(bot, sandbox, "issue_comment", comment_payload(15, "thanks", login="someone"))  # a refresh: both shown
    dash = board(sandbox)
    keys = list(D.boxes(dash["body"]))
    assert len(keys) == 4
    writes = len(sandbox.writes)
    for _ in range(5):  # every box at once, five times, within the minute
        before = board(sandbox)["body"]
        after = before
        for key in keys:
            after = ticked(after, key)
        await deliver(bot, sandbox, edited(sandbox, dash["number"], after, "reader", before=before))
    for n in (15, 45):
        assert (await rt.store.active_run(f"{REPO}#{n}")).state == "waiting"
    notes = sandbox.comments(REPO, dash["number"])
    assert len(notes) == 1 and "`read`" in notes[0]["body"]
    # One note and at most one edit of the dashboard (the minute's), whatever the number of ticks.
    assert len(sandbox.writes) - writes <= 2
    assert await rt.store.queued_threads() == []


async def test_a_reader_cannot_plant_a_box_and_tick_it(bot: Any, sandbox: Any, team: Team, clock: Clock,
                                                       waiting_board: dict[str, Any]) -> None:
    """Boxes a reader adds (for this run without its head, for another thread's run) are refused like any tick."""
    rt, _ = bot
    run_id = (await rt.store.active_run(f"{REPO}#15")).id
    dash = waiting_board
    extra = [f"- [ ] go <!-- box:approve:{run_id}:: -->", f"- [ ] stop <!-- box:cancel:{run_id}:: -->"]
    added = planted(dash["body"], *extra)
    await deliver(bot, sandbox, edited(sandbox, dash["number"], added, "reader"))  # no tick: nothing at all
    assert sandbox.comments(REPO, dash["number"]) == []
    sandbox.repo(REPO).issues[dash["number"]]["body"] = added
    clock.later()
    both = ticked(ticked(added, f"approve:{run_id}::"), f"cancel:{run_id}::")
    await deliver(bot, sandbox, edited(sandbox, dash["number"], both, "reader"))
    assert (await rt.store.active_run(f"{REPO}#15")).state == "waiting"
    assert "needs write, maintain or admin access" in sandbox.comments(REPO, dash["number"])[-1]["body"]
    assert not [c for c in sandbox.comments(REPO, 15) if "Cancelled" in c["body"]]


async def test_a_forged_dashboard_of_a_readers_own_costs_no_github_call(bot: Any, sandbox: Any, team: Team,
                                                                        clock: Clock, waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    real = waiting_board
    forged = sandbox.add_issue(REPO, title=D.TITLE, body=real["body"], user="reader")
    requests = len(sandbox.requests) if hasattr(sandbox, "requests") else None
    writes = len(sandbox.writes)
    for _ in range(3):
        p = edited(sandbox, forged["number"], ticked(real["body"], box_of(real["body"], "cancel", 15)), "reader",
                   before=real["body"])
        await deliver(bot, sandbox, p, status=200)  # ignored at the door: the issue's author is no App
    assert len(sandbox.writes) == writes and sandbox.comments(REPO, forged["number"]) == []
    if requests is not None:
        assert len(sandbox.requests) == requests
    assert (await rt.store.active_run(f"{REPO}#15")).state == "waiting"


async def test_a_forged_dashboards_edits_are_not_stored(bot: Any, sandbox: Any, team: Team, clock: Clock,
                                                        waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    real = waiting_board
    forged = sandbox.add_issue(REPO, title=D.TITLE, body=real["body"], user="reader")
    before = sum((await rt.store.job_states()).values())
    for n in range(5):
        await deliver(bot, sandbox, edited(sandbox, forged["number"], real["body"] + " " * (n + 1), "reader"),
                      status=200)
    assert sum((await rt.store.job_states()).values()) == before


async def option_ticked(bot: Any, sandbox: Any, clock: Clock) -> tuple[dict[str, Any], str, str]:
    """#36 escalated; a maintainer ticks its option 1 (resume), and the run goes on up to its approval request.
    The dashboard, its body as it was before the tick (a page left open) and the option's box id."""
    opted_in(sandbox, maintainer="admin", other="write")
    await send(bot, sandbox, "issues", issue_payload(36, ["slow-query"]))
    clock.later()
    await send(bot, sandbox, "issue_comment", comment_payload(36, "/escalate we need a product decision first"))
    dash = board(sandbox)
    page = dash["body"]
    option = box_of(page, "approve", 36)
    clock.later()
    await tick(bot, sandbox, dash["number"], option, "maintainer")
    assert (await bot[0].store.active_run(f"{REPO}#36")).state == "waiting"  # resumed, up to the approval
    return dash, page, option


async def test_a_second_tick_of_an_option_box_does_not_approve_the_change(bot: Any, sandbox: Any, team: Team,
                                                                          clock: Clock) -> None:
    """Two maintainers (or one, twice from a page left open) tick the same option of an escalation: the first
    resumes the run up to its approval request; the second was for the escalation, not for the change."""
    rt, _ = bot
    dash, page, option = await option_ticked(bot, sandbox, clock)
    clock.later()
    await deliver(bot, sandbox, edited(sandbox, dash["number"], ticked(page, option), "other", before=page))
    assert (await rt.store.active_run(f"{REPO}#36")).state == "waiting"  # the change is not approved
    assert posts(sandbox, 36)[-1] != "done"
    assert "no longer" in sandbox.comments(REPO, dash["number"])[-1]["body"]


async def test_an_approval_box_without_its_head_approves_nothing(bot: Any, sandbox: Any, team: Team,
                                                                 clock: Clock, waiting_board: dict[str, Any]) -> None:
    """An approval box is for one commit: one written in without it is not a box the dashboard offered."""
    rt, _ = bot
    run_id = (await rt.store.active_run(f"{REPO}#15")).id
    number = plant(sandbox, f"- [ ] go <!-- box:approve:{run_id}:: -->")
    clock.later()
    await tick(bot, sandbox, number, f"approve:{run_id}::", "maintainer")
    assert (await rt.store.active_run(f"{REPO}#15")).state == "waiting"
    assert "no longer" in sandbox.comments(REPO, number)[-1]["body"]


async def test_a_tick_on_a_finished_runs_box_does_nothing(bot: Any, sandbox: Any, team: Team, clock: Clock,
                                                          waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    dash = waiting_board
    page = dash["body"]
    cancel = box_of(page, "cancel", 15)
    await send(bot, sandbox, "issue_comment", comment_payload(15, "/approve"))
    assert posts(sandbox, 15)[-1] == "done"
    writes = [w for w in sandbox.writes if w.number == 15]
    clock.later()
    await deliver(bot, sandbox, edited(sandbox, dash["number"], ticked(page, cancel), "maintainer", before=page))
    assert [w for w in sandbox.writes if w.number == 15] == writes  # nothing on the run's thread
    assert "has ended" in sandbox.comments(REPO, dash["number"])[-1]["body"]


async def test_ticks_with_the_dashboard_turned_off_do_nothing(bot: Any, sandbox: Any, team: Team,
                                                              clock: Clock, waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    dash = waiting_board
    sandbox.set_file(REPO, ".github/triage-lead.yml", "dashboard: false\n")
    rt.deps.views._cache.clear()  # the config as read now, not the one kept for five minutes
    clock.later()
    await tick(bot, sandbox, dash["number"], box_of(dash["body"], "cancel", 15), "maintainer")
    assert (await rt.store.active_run(f"{REPO}#15")).state == "waiting"
    assert await rt.store.queued_threads() == []


def test_an_untick_is_no_tick_and_a_missing_before_is_none() -> None:
    body = D.render(D.Board(runs=(D.RunLine("r-1", 3, "waiting", "wf", "t", head="ab" * 20),)))
    key = next(iter(D.boxes(body)))
    on = ticked(body, key)
    assert D.ticks(on, body) == [] and D.ticks(None, on) == [] and D.ticks("", on) == []


HOSTILE_TITLES = [
    "@octo-org/admins please look",
    "x <!-- box:cancel:r-9:: -->",
    "x\n  - [ ] go <!-- box:approve:r-9:: -->",
    "/approve\n/approve budget",
    "```\nfenced",
    "[click](javascript:alert(1))",
    "\u202eevil\u202c <!-- triage-lead:dashboard:octo-org/other -->",
    "`" * 50 + " -->" + "y" * 5000,
]


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_a_hostile_title_adds_no_box_and_hides_no_marker(title: str) -> None:
    run = D.RunLine("r-1", 3, "waiting", "wf", title, waiting=title, head="ab" * 20)
    esc = D.RunLine("r-2", 4, "escalated", title, title, options=(title, "ok"), issue=title)
    body = with_marker(D.render(D.Board(runs=(run, esc), failed=(D.FailedLine(7, 5, title[:50], title),))),
                       mark_of(REPO))
    assert set(D.boxes(body)) == {f"approve:r-1::{'ab' * 20}", "cancel:r-1::", "approve:r-2:1:", "approve:r-2:2:",
                                  "cancel:r-2::", "retry:job-7::"}
    assert trailing(body) == f"dashboard:{REPO}"
    assert "\u202e" not in body and "\u202c" not in body  # no text drawn backwards over its neighbours
    assert len(body) < 10_000  # each piece cut to its limit
    # Titles and options stay inside their own list item: no line of the body starts with a command or a fence.
    assert not [ln for ln in body.split("\n") if ln.lstrip().startswith(("/approve", "```"))]


@pytest.mark.parametrize("shift", range(0, 80, 3))
def test_a_board_too_long_is_cut_without_losing_the_marker_or_leaving_half_a_box(shift: int) -> None:
    """Outsiders' issues enough to fill the dashboard (titles of any length): the cut falls between lines."""
    runs = tuple(D.RunLine(f"r-{i}", i, "waiting", "wf", "t" * ((i + shift) % 80 + 1), waiting="Approve",
                           head="ab" * 20) for i in range(1, 2000))
    body = with_marker(D.render(D.Board(runs=runs)), mark_of(REPO))
    assert len(body) <= 61_000 and trailing(body) == f"dashboard:{REPO}" and "_…cut" in body
    # None is cut in the middle: a cut box id would open an HTML comment, a cut title a code span.
    assert body.count("<!--") == body.count("-->") and body.count("`") % 2 == 0


async def test_an_option_box_from_an_earlier_escalation_picks_nothing_in_a_later_one(bot: Any, sandbox: Any,
                                                                                    team: Team, clock: Clock) -> None:
    """A page left open on the first escalation: its option 1 is not option 1 of the escalation raised since."""
    rt, _ = bot
    dash, page, option = await option_ticked(bot, sandbox, clock)
    clock.later()
    await send(bot, sandbox, "issue_comment", comment_payload(36, "/escalate again", comment_id=9002))
    clock.later()
    await deliver(bot, sandbox, edited(sandbox, dash["number"], ticked(page, option), "maintainer", before=page))
    assert (await rt.store.active_run(f"{REPO}#36")).state == "escalated"  # the second escalation still waits
    assert "no longer" in sandbox.comments(REPO, dash["number"])[-1]["body"]


async def test_the_bots_own_edit_ticks_nothing(bot: Any, sandbox: Any, team: Team, clock: Clock,
                                               waiting_board: dict[str, Any]) -> None:
    """The bot's edit keeps the ticks it read; a person's untick landing between its read and its edit comes back
    in its delivery as a tick by the bot: that is nobody's tick (no note to itself, nothing queued)."""
    rt, _ = bot
    dash = waiting_board
    page = dash["body"]
    p = edited(sandbox, dash["number"], ticked(page, box_of(page, "cancel", 15)), "x", before=page)
    p["sender"] = {**p["sender"], "login": rt.deps.bot_login, "type": "Bot"}
    clock.later()
    await deliver(bot, sandbox, p)
    assert (await rt.store.active_run(f"{REPO}#15")).state == "waiting"
    assert sandbox.comments(REPO, dash["number"]) == []


async def test_a_forged_dashboard_opened_first_is_not_taken_for_the_bots(bot: Any, sandbox: Any, team: Team,
                                                                       clock: Clock) -> None:
    """A reader opens an issue with the dashboard's marker (and the bot's label, as a template may set it) before
    the bot opens its own: the bot opens its own, edits only that, and never the reader's."""
    opted_in(sandbox, reader="read")
    forged = sandbox.add_issue(REPO, title=D.TITLE, body=with_marker("### mine\n\n- [ ] x <!-- box:cancel:r-1:: -->",
                                                                    mark_of(REPO)), user="reader")
    sandbox.repo(REPO).issues[forged["number"]]["labels"] = [{"name": "triage-lead", "id": 1, "color": "ededed"}]
    await waiting_run(bot, sandbox, 15)
    real = [i for i in sandbox.repo(REPO).issues.values() if i["number"] != forged["number"]
            and trailing(i["body"]) == f"dashboard:{REPO}"]
    assert len(real) == 1 and "on #15" in real[0]["body"]
    assert sandbox.issue(REPO, forged["number"])["body"].startswith("### mine")  # never edited
    assert not [w for w in sandbox.writes if w.number == forged["number"]]


async def test_an_untick_does_nothing(bot: Any, sandbox: Any, team: Team, clock: Clock,
                                      waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    dash = waiting_board
    on = ticked(dash["body"], box_of(dash["body"], "cancel", 15))
    writes = len(sandbox.writes)
    clock.later()
    await deliver(bot, sandbox, edited(sandbox, dash["number"], dash["body"], "maintainer", before=on))
    assert (await rt.store.active_run(f"{REPO}#15")).state == "waiting"
    assert len(sandbox.writes) == writes and await rt.store.queued_threads() == []



async def test_a_deleted_dashboard_is_opened_again_and_a_closed_one_still_works(bot: Any, sandbox: Any, team: Team,
                                                                               clock: Clock, waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    first = waiting_board
    sandbox.repo(REPO).issues[first["number"]]["state"] = "closed"  # someone closed it: ticks still act
    clock.later()
    await tick(bot, sandbox, first["number"], box_of(first["body"], "cancel", 15), "maintainer")
    assert await rt.store.active_run(f"{REPO}#15") is None
    del sandbox.repo(REPO).issues[first["number"]]  # an admin deleted it
    await waiting_run(bot, sandbox, 46)
    clock.later()
    await send(bot, sandbox, "issue_comment", comment_payload(46, "thanks", login="someone"))  # forgotten here
    clock.later()
    await send(bot, sandbox, "issue_comment", comment_payload(46, "thanks", login="someone", comment_id=9003))
    again = board(sandbox)
    assert again["number"] != first["number"] and "on #46" in again["body"]
