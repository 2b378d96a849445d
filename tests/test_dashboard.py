"""The dashboard issue (issue 17, point 1): one issue per repository whose config says ``dashboard: true``, edited
in place, with checkboxes that approve, retry or cancel as the comment commands do.

Through the webhook, against the sandbox GitHub and the local Messages API: a maintainer's tick and a reader's,
a tick that lands while the bot is about to edit, coalesced edits, and an issue that only looks like a dashboard.
The bot's clock (``deps.clock``: the edit window's and the reply limits') is moved by hand, never waited for.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from bot.core import dashboard as D
from bot.core.markers import markers_in
from bot.run import dashboard_board, pipeline
from bot.sandbox.team import Team
from tests.board_setup import (  # noqa: F401
    Clock,
    board,
    box_of,
    clock,
    dashboards,
    deliver,
    edited,
    opted_in,
    post,
    tick,
    ticked,
    waiting_board,
    waiting_run,
)
from tests.conftest import INSTALLATION
from tests.test_workflows_e2e import (  # noqa: F401
    REPO,
    bot,
    comment_payload,
    fake,
    issue_payload,
    posts,
    pr_payload,
    send,
    team,
)


async def test_a_maintainers_tick_approves_and_a_readers_is_undone(bot: Any, sandbox: Any, team: Team,
                                                                 clock: Clock, waiting_board: dict[str, Any]) -> None:
    dash = waiting_board
    body = dash["body"]
    assert "#### Waiting for approval (1)" in body and "triage-lead" in [lab["name"] for lab in dash["labels"]]
    assert "@octocat" not in body and "@\u200boctocat" in body  # a title pings nobody
    approve = box_of(body, "approve", 15)
    head = (await bot[0].store.active_run(f"{REPO}#15")).data["run"]["head_sha"]
    assert approve.endswith(f":{head}")  # an approval box is for one commit
    writes = len(sandbox.writes)

    clock.later()
    await tick(bot, sandbox, dash["number"], approve, "reader")
    assert D.boxes(board(sandbox)["body"])[approve] is False  # undone
    [note] = [c["body"] for c in sandbox.comments(REPO, dash["number"])]
    assert "needs write, maintain or admin access" in note and "`read`" in note and "unticked" in note
    assert (await bot[0].store.active_run(f"{REPO}#15")).state == "waiting"  # nothing approved
    assert not [w for w in sandbox.writes[writes:] if w.number == 15]

    clock.later()
    await tick(bot, sandbox, dash["number"], approve, "maintainer")
    assert posts(sandbox, 15)[-1] == "done"  # approved through /approve's own path: the change delivered
    assert await bot[0].store.active_run(f"{REPO}#15") is None
    body = board(sandbox)["body"]
    assert "#### Waiting for approval (0)" in body and approve not in body
    assert len(sandbox.comments(REPO, dash["number"])) == 1  # the effect is the answer: no note


async def test_a_tick_made_while_the_bot_edits_is_kept_and_acted_on(bot: Any, sandbox: Any, team: Team,
                                                                   clock: Clock, waiting_board: dict[str, Any]) -> None:
    dash = waiting_board
    cancel = box_of(dash["body"], "cancel", 15)
    before = dash["body"]
    person = ticked(before, cancel)

    def lands(issue: dict[str, Any]) -> None:  # the person's tick, between the bot's decision and its edit
        issue["body"] = person

    sandbox.before_next_read(REPO, dash["number"], lands)
    clock.later()
    await send(bot, sandbox, "issues", issue_payload(30, ["api"]))  # another run: the dashboard is edited
    body = board(sandbox)["body"]
    assert "on #30" in body  # the bot's edit landed
    assert D.boxes(body)[cancel] is True  # and kept the person's tick
    # The person's own delivery: acted on whatever the bot's edit did meanwhile.
    await deliver(bot, sandbox, edited(sandbox, dash["number"], body, "maintainer", before=before))
    rt = bot[0]
    assert await rt.store.active_run(f"{REPO}#15") is None  # cancelled
    clock.later()
    await pipeline.refresh_due(rt.deps)
    assert "on #15" not in board(sandbox)["body"] and cancel not in board(sandbox)["body"]


async def test_edits_are_coalesced_and_the_last_change_is_shown_later(bot: Any, sandbox: Any, team: Team,
                                                                     clock: Clock, waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    number = board(sandbox)["number"]
    await send(bot, sandbox, "issues", issue_payload(30, ["api"]))  # within the minute: not shown yet
    assert "on #30" not in board(sandbox)["body"]
    assert not [w for w in sandbox.writes if w.kind == "issue_edit" and w.number == number]
    assert await pipeline.refresh_due(rt.deps) == 0  # still within the minute
    clock.later()
    assert await pipeline.refresh_due(rt.deps) == 1
    assert "on #30" in board(sandbox)["body"] and "#### Waiting for approval (2)" in board(sandbox)["body"]
    assert len([w for w in sandbox.writes if w.kind == "issue_edit" and w.number == number]) == 1
    assert await pipeline.refresh_due(rt.deps) == 0  # nothing left due
    clock.later()
    await send(bot, sandbox, "issues", issue_payload(31, ["api"]))
    assert len(dashboards(sandbox)) == 1 and "on #31" in board(sandbox)["body"]  # found again: never two


async def test_an_issue_that_only_looks_like_a_dashboard_is_not_acted_on(bot: Any, sandbox: Any, team: Team,
                                                                       clock: Clock) -> None:
    rt, _ = bot
    opted_in(sandbox, mallory="write")
    await waiting_run(bot, sandbox, 15)
    real = board(sandbox)
    # Another App's issue (a person's is ignored at the door): only the bot's own dashboard is read.
    forged = sandbox.add_issue(REPO, title="dashboard", body=real["body"], user="other-app[bot]", user_type="Bot")
    clock.later()
    p = edited(sandbox, forged["number"], ticked(real["body"], box_of(real["body"], "cancel", 15)), "mallory")
    await send(bot, sandbox, "issues", p)
    assert await rt.store.queued_threads() == []
    assert (await rt.store.active_run(f"{REPO}#15")).state == "waiting"
    assert sandbox.comments(REPO, forged["number"]) == []


async def test_without_the_config_key_there_is_no_dashboard(bot: Any, sandbox: Any, team: Team) -> None:
    await waiting_run(bot, sandbox, 15)
    assert dashboards(sandbox) == []


def test_a_tick_is_a_box_unticked_before_and_ticked_after() -> None:
    body = D.render(D.Board(runs=(D.RunLine("r-1", 3, "escalated", "wf", "t", options=("Go", "Stop")),)))
    one, other = D.Box("approve", "r-1", "1"), D.Box("cancel", "r-2")
    after = ticked(body, one.key)
    assert D.ticks(body, after) == [one] and D.ticks(after, after) == [] and D.ticks(None, after) == []
    # A box someone adds already ticked is nobody's tick; nor is a box id in the middle of a line.
    added = after + f"\n  - [x] mine <!-- box:{other.key} -->\n- [x] `<!-- box:cancel:r-1:: -->` x"
    assert D.ticks(body, added) == [one]
    assert not any(k.startswith("cancel") for k in markers_in(body))
    # An option (model output) that opens an HTML comment would hide the box ids after it: it opens nothing.
    hostile = D.render(D.Board(runs=(D.RunLine("r-1", 3, "escalated", "wf", "t", options=("x <!-- ", "y")),)))
    assert "x &lt;!--" in hostile and list(D.boxes(hostile)) == ["approve:r-1:1:", "approve:r-1:2:", "cancel:r-1::"]


async def test_an_approval_box_is_for_its_commit_only(bot: Any, sandbox: Any, team: Team, clock: Clock) -> None:
    """A tick on a box shown for an older head (a page left open across a push) approves nothing."""
    rt, _ = bot
    opted_in(sandbox, maintainer="write")
    p = pr_payload(sandbox, 20, ["api"])
    await send(bot, sandbox, "pull_request", p)
    dash = board(sandbox)
    old_page, old_box = dash["body"], box_of(dash["body"], "approve", 20)
    new_head = sandbox.set_file(REPO, "README.md", "changed\n", ref=p["pull_request"]["head"]["ref"])
    sync = copy.deepcopy(p) | {"action": "synchronize"}
    sync["pull_request"]["head"]["sha"] = new_head
    clock.later()
    await send(bot, sandbox, "pull_request", sync)
    assert box_of(board(sandbox)["body"], "approve", 20).endswith(new_head)  # approval asked again, for the new head
    clock.later()
    await deliver(bot, sandbox, edited(sandbox, dash["number"], ticked(old_page, old_box), "maintainer", before=old_page))
    assert (await rt.store.active_run(f"{REPO}#20")).state == "waiting"  # not approved
    note = sandbox.comments(REPO, dash["number"])[-1]["body"]
    assert f"`{old_box.rsplit(':', 1)[1][:7]}`" in note and f"`{new_head[:7]}`" in note and "not applied" in note


async def test_a_box_naming_another_repositorys_run_does_nothing(bot: Any, sandbox: Any, team: Team,
                                                                clock: Clock, waiting_board: dict[str, Any]) -> None:
    """Someone who may edit this repository's dashboard writes in a box for a run elsewhere: their write access
    here says nothing of that repository."""
    rt, _ = bot
    mine = await rt.store.active_run(f"{REPO}#15")
    elsewhere = dataclasses.replace(mine, id="elsewhere-1", repo="octo-org/other", thread="octo-org/other#15")
    await rt.store.save_run(elsewhere)
    dash = board(sandbox)
    end = dash["body"].rindex("\n\n<!-- triage-lead:")
    planted = dash["body"][:end] + "\n- [ ] tidy up <!-- box:cancel:elsewhere-1:: -->" + dash["body"][end:]
    sandbox.repo(REPO).issues[dash["number"]]["body"] = planted  # an edit that adds the box (no tick)
    clock.later()
    await tick(bot, sandbox, dash["number"], "cancel:elsewhere-1::", "maintainer")
    assert (await rt.store.load_run("elsewhere-1")).state == "waiting"
    assert "names no run or job of this repository" in sandbox.comments(REPO, dash["number"])[-1]["body"]


async def test_a_failed_job_is_listed_and_its_box_retries_it(bot: Any, sandbox: Any, team: Team,
                                                             clock: Clock, waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 422, times=1)  # refused, not an outage: the job fails for good
    await post(bot, sandbox, "issues", issue_payload(40, ["api"]))
    assert (await rt.store.job_states()).get("failed") == 1
    clock.later()
    await post(bot, sandbox, "issue_comment", comment_payload(15, "thanks", login="someone"))  # any job: a refresh
    dash = board(sandbox)
    assert "#### Failed jobs (1)" in dash["body"] and "on #40" in dash["body"]
    retry = next(k for k in D.boxes(dash["body"]) if k.startswith("retry:"))
    clock.later()
    await tick(bot, sandbox, dash["number"], retry, "maintainer")
    assert posts(sandbox, 40)[0] == "status"  # the failed work ran again, on its own thread
    assert "queued again" in sandbox.comments(REPO, dash["number"])[-1]["body"]
    clock.later()
    await pipeline.refresh_due(rt.deps)
    assert "#### Failed jobs (0)" in board(sandbox)["body"]


async def test_a_retry_box_retries_the_job_it_lists_and_no_other(bot: Any, sandbox: Any, team: Team, clock: Clock,
                                                                  waiting_board: dict[str, Any]) -> None:
    """Two failed jobs on one thread: ticking the older one's box queues that job, by its id; the newer stays failed
    (``/retry`` on the thread would have taken the newest)."""
    rt, _ = bot
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 422, times=2)  # refused, not an outage: each job fails for good
    for _ in range(2):
        await post(bot, sandbox, "issues", issue_payload(40, ["api"]))
    older, newer = sorted(info.job.id for info in await rt.store.failed_jobs(f"{REPO}#40"))
    clock.later()
    await post(bot, sandbox, "issue_comment", comment_payload(15, "thanks", login="someone"))  # any job: a refresh
    dash = board(sandbox)
    assert "#### Failed jobs (2)" in dash["body"] and f"**Retry** job {older}" in dash["body"]
    clock.later()
    await tick(bot, sandbox, dash["number"], f"retry:job-{older}::", "maintainer")
    assert (await rt.store.job_info(older)).state != "failed"  # queued again, and ran
    assert (await rt.store.job_info(newer)).state == "failed"
    assert f"Job {older} is queued again." in sandbox.comments(REPO, dash["number"])[-1]["body"]


async def test_refreshes_do_not_each_read_the_repository(bot: Any, sandbox: Any, team: Team, clock: Clock,
                                                         waiting_board: dict[str, Any]) -> None:
    """The default branch (where the config is read) is known from the first refresh for ``BRANCH_TTL``: later
    refreshes within it cost no ``GET /repos/{repo}``."""
    def gets(path: str) -> int:
        return len([r for r in sandbox.requests if r.method == "GET" and r.path == path])

    reads, rereads = gets(f"/repos/{REPO}"), gets(f"/repos/{REPO}/issues/{waiting_board['number']}")
    for n in range(3):
        clock.later()
        await post(bot, sandbox, "issue_comment", comment_payload(15, f"thanks {n}", login="someone"))
    assert gets(f"/repos/{REPO}/issues/{waiting_board['number']}") == rereads + 3  # three refreshes ran
    assert gets(f"/repos/{REPO}") == reads
    clock.later(dashboard_board.BRANCH_TTL)
    p = comment_payload(15, "thanks again", login="someone")
    del p["repository"]["default_branch"]  # a delivery that names none: GitHub is asked, the name known being old
    await post(bot, sandbox, "issue_comment", p)
    assert gets(f"/repos/{REPO}") == reads + 1


async def test_an_escalations_options_are_boxes(bot: Any, sandbox: Any, team: Team, clock: Clock) -> None:
    rt, _ = bot
    opted_in(sandbox, maintainer="admin")
    await send(bot, sandbox, "issues", issue_payload(36, ["slow-query"]))
    clock.later()
    await send(bot, sandbox, "issue_comment", comment_payload(36, "/escalate we need a product decision first"))
    body = board(sandbox)["body"]
    assert "#### Escalated: waiting for a decision (1)" in body and "we need a product decision first" in body
    resume = box_of(body, "approve", 36)
    assert resume.split(":")[2] == "1" and "**Option 1:** Resume where the workflow stopped" in body
    clock.later()
    await tick(bot, sandbox, board(sandbox)["number"], resume, "maintainer")
    assert (await rt.store.active_run(f"{REPO}#36")).state == "waiting"  # resumed, up to the approval
    assert "needs-decision" not in [lab["name"] for lab in sandbox.issue(REPO, 36)["labels"]]


async def test_a_dashboard_someone_edited_below_its_marker_is_repaired(bot: Any, sandbox: Any, team: Team,
                                                                       clock: Clock, waiting_board: dict[str, Any]) -> None:
    """The marker no longer ends the issue (so the door ignores its edits): the bot, which opened it, rewrites it
    whole at its next refresh instead of refusing it for good."""
    number = board(sandbox)["number"]
    sandbox.repo(REPO).issues[number]["body"] += "\n\nthanks, bot!"
    assert dashboards(sandbox) == []
    clock.later()
    await send(bot, sandbox, "issues", issue_payload(30, ["api"]))
    assert board(sandbox)["number"] == number and "on #30" in board(sandbox)["body"]


async def test_a_due_refresh_with_nothing_to_edit_is_dropped_not_retried_forever(bot: Any, sandbox: Any,
                                                                                  team: Team, waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    await rt.store.mark_due("someone/else", INSTALLATION, 0.0)  # a failed job's repository: no dashboard, no call
    await rt.store.mark_due(REPO, 424242, 0.0)  # the App uninstalled since
    requests = len(sandbox.requests)
    assert await pipeline.refresh_due(rt.deps) == 0
    assert await rt.store.due_dashboards() == []
    assert not [r for r in sandbox.requests[requests:] if "someone/else" in r.path]


async def test_a_box_from_an_old_page_never_acts_on_a_newer_run_of_its_thread(bot: Any, sandbox: Any, team: Team,
                                                                               clock: Clock, waiting_board: dict[str, Any]) -> None:
    """A box names its run: after /cancel and a new run on the same thread, a Cancel ticked on a page left open
    from before is not applied to the new run."""
    rt, _ = bot
    dash = waiting_board
    page, cancel = dash["body"], box_of(dash["body"], "cancel", 15)
    clock.later()
    await send(bot, sandbox, "issue_comment", comment_payload(15, "/cancel", comment_id=8801))
    assert await rt.store.active_run(f"{REPO}#15") is None
    clock.later()
    await send(bot, sandbox, "issues", issue_payload(15, ["api"], title="Add an @octocat endpoint") | {"action": "reopened"})
    newer = await rt.store.active_run(f"{REPO}#15")
    assert newer is not None and newer.state == "waiting"
    clock.later()
    await deliver(bot, sandbox, edited(sandbox, dash["number"], ticked(page, cancel), "maintainer", before=page))
    assert (await rt.store.active_run(f"{REPO}#15")).id == newer.id  # still waiting, not cancelled
    assert (await rt.store.active_run(f"{REPO}#15")).state == "waiting"
