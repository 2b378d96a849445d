"""The dashboard's guards, each through the webhook or a tick's own job against the sandbox GitHub: a Retry box's
four checks (write access when its job runs, once per tick, a job still failed, a command's job only once its
command applied), a repository name that changed hands (the earlier owner's runs are neither listed nor
reachable by a box), and the default branch a delivery names (a renamed one is read at once).

A tick's job is run as the queue runs it (``pipeline.process``), so a test can run it twice, as a retry after a
crash would, or change someone's permission between the tick and its job.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.core import dashboard as D
from bot.github.writes import digest
from bot.run import pipeline
from bot.sandbox.team import Team
from bot.store import Job
from tests.board_setup import Clock, board, box_of, clock, deliver, edited, post, ticked, waiting_board  # noqa: F401
from tests.conftest import INSTALLATION
from tests.test_workflows_e2e import REPO, bot, comment_payload, fake, issue_payload, send, team  # noqa: F401


async def failed_job(bot: Any, sandbox: Any, number: int = 40, *, faults: int = 1) -> int:
    """A job on ``number`` that failed for good (GitHub refused the read of its branch head, ``faults`` times in a row)."""
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 422, times=faults)
    await post(bot, sandbox, "issues", issue_payload(number, ["api"]))
    [info] = await bot[0].store.failed_jobs(f"{REPO}#{number}")
    return info.job.id


def retry_tick(dash: int, job_id: int, thread: str, login: str, delivery: str = "edit-1") -> Job:
    """The job a tick of job ``job_id``'s Retry box becomes (bot/run/dashboard.py ``_queue``)."""
    box = f"retry:job-{job_id}::"
    payload = {"repo": REPO, "installation_id": INSTALLATION, "box": box, "thread": thread, "dashboard": dash,
               "written_at": None, "sender": {"login": login, "id": 1, "type": "User"}}
    return Job(id=0, delivery_id=f"{delivery}:{digest(box)}", thread=thread, event=D.TICK_EVENT, payload=payload,
               attempts=1)


async def run_queued(bot: Any, thread: str) -> None:
    bot[0].jobs.kick(thread, delivered=False)
    await bot[0].jobs.drained(30)


def last_note(sandbox: Any, dash: int) -> str:
    return str(sandbox.comments(REPO, dash)[-1]["body"])


async def state_of(bot: Any, job_id: int) -> str:
    info = await bot[0].store.job_info(job_id)
    assert info is not None
    return info.state


# ---- a Retry box's guards ---------------------------------------------------------------------------------

async def test_a_retry_tick_whose_sender_lost_write_access_before_its_job_ran_queues_nothing(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    job = await failed_job(bot, sandbox)
    sandbox.set_permission(REPO, "maintainer", "read")  # between the tick (checked then) and its job
    await pipeline.process(retry_tick(waiting_board["number"], job, f"{REPO}#40", "maintainer"), bot[0].deps)
    assert await state_of(bot, job) == "failed"
    assert "needs write, maintain or admin access" in last_note(sandbox, waiting_board["number"])


async def test_a_retry_ticks_job_run_twice_queues_its_failed_job_once(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """The tick's job re-run (a retry after a crash) after the job it queued failed again: not queued a second time
    (one tick, one retry)."""
    job = await failed_job(bot, sandbox, faults=2)
    tick = retry_tick(waiting_board["number"], job, f"{REPO}#40", "maintainer")
    await pipeline.process(tick, bot[0].deps)
    assert f"Job {job} is queued again." in last_note(sandbox, waiting_board["number"])
    await run_queued(bot, f"{REPO}#40")
    assert await state_of(bot, job) == "failed"  # ran, and failed again
    await pipeline.process(tick, bot[0].deps)
    assert await state_of(bot, job) == "failed"


async def test_a_retry_tick_on_a_job_that_no_longer_failed_says_so(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    job = await failed_job(bot, sandbox)
    await pipeline.process(retry_tick(waiting_board["number"], job, f"{REPO}#40", "maintainer"), bot[0].deps)
    await run_queued(bot, f"{REPO}#40")
    assert await state_of(bot, job) == "done"
    clock.later()  # an old page's box, ticked again: a new edit
    await pipeline.process(retry_tick(waiting_board["number"], job, f"{REPO}#40", "maintainer", "edit-2"),
                           bot[0].deps)
    assert f"Job {job} is no longer a failed job (`done`)" in last_note(sandbox, waiting_board["number"])


async def test_a_retry_tick_on_a_command_that_never_applied_does_not_run_it_later(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """A ``/cancel`` whose job failed before the command applied: re-run later, it would act on whatever the run is
    by then, so its Retry box does not queue it."""
    rt, _ = bot
    sandbox.fail("GET", rf"/repos/{REPO}/issues/comments/\d+", 422, times=1)  # its re-read of the comment
    await post(bot, sandbox, "issue_comment", comment_payload(15, "/cancel", comment_id=8802))
    [info] = await rt.store.failed_jobs(f"{REPO}#15")
    await pipeline.process(retry_tick(waiting_board["number"], info.job.id, f"{REPO}#15", "maintainer"), rt.deps)
    assert await state_of(bot, info.job.id) == "failed"
    assert "was a command that did not apply" in last_note(sandbox, waiting_board["number"])
    assert (await rt.store.active_run(f"{REPO}#15")).state == "waiting"  # type: ignore[union-attr]


# ---- a repository name that changed hands ----------------------------------------------------------------

async def test_the_earlier_owners_runs_are_not_listed_nor_reached_by_a_box(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    mine = await rt.store.active_run(f"{REPO}#15")
    assert mine is not None
    earlier = dataclasses.replace(mine, id="earlier-owner-1", thread=f"{REPO}#77", number=77,
                                  installation_id=INSTALLATION + 1,
                                  data=mine.data | {"ctx": mine.data["ctx"] | {"title": "the earlier owner's secret"}})
    await rt.store.save_run(earlier)
    clock.later()
    await post(bot, sandbox, "issue_comment", comment_payload(15, "thanks", login="someone"))  # any job: a refresh
    body = board(sandbox)["body"]
    assert "on #15" in body and "on #77" not in body and "secret" not in body
    cancel = "cancel:earlier-owner-1::"
    job = Job(id=0, delivery_id=f"edit-9:{digest(cancel)}", thread=f"{REPO}#77", event=D.TICK_EVENT, attempts=1,
              payload={"repo": REPO, "installation_id": INSTALLATION, "box": cancel, "thread": f"{REPO}#77",
                       "dashboard": board(sandbox)["number"], "written_at": None,
                       "sender": {"login": "maintainer", "id": 1, "type": "User"}})
    await pipeline.process(job, rt.deps)
    assert (await rt.store.load_run("earlier-owner-1")).state == "waiting"  # type: ignore[union-attr]
    assert "names no run or job of this repository" in last_note(sandbox, board(sandbox)["number"])


# ---- the default branch a delivery names ------------------------------------------------------------------

async def test_a_renamed_default_branch_is_read_from_the_next_delivery_that_names_it(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """Within ``BRANCH_TTL`` of the last refresh: the dashboard's config is read on the branch the delivery names."""
    sandbox.set_file(REPO, ".github/triage-lead.yml", "dashboard: true\napproval: {not_author: true}\n", ref="trunk")
    sandbox.repo(REPO).data["default_branch"] = "trunk"
    clock.later()
    p = comment_payload(15, "thanks", login="someone")
    p["repository"]["default_branch"] = "trunk"
    await post(bot, sandbox, "issue_comment", p)
    assert "other than the pull request's author" in board(sandbox)["body"]


async def test_ticks_are_read_against_the_config_on_the_branch_their_edit_names(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """The default branch renamed to one whose config turns the dashboard off: a tick made after is not acted on."""
    sandbox.set_file(REPO, ".github/triage-lead.yml", "dashboard: false\n", ref="trunk")
    sandbox.repo(REPO).data["default_branch"] = "trunk"
    clock.later()
    body = waiting_board["body"]
    p = edited(sandbox, waiting_board["number"], ticked(body, box_of(body, "cancel", 15)), "maintainer")
    p["repository"]["default_branch"] = "trunk"
    await deliver(bot, sandbox, p)
    assert (await bot[0].store.active_run(f"{REPO}#15")).state == "waiting"  # type: ignore[union-attr]
