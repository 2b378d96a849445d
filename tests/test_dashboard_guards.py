"""The dashboard's guards, each through the webhook or a tick's own job against the sandbox GitHub: a Retry box's
four checks (write access when its job runs, once per tick, a job still failed, a command's job only once its
command applied), a repository name that changed hands (the earlier owner's runs are neither listed nor
reachable by a box), and the default branch a delivery names (a renamed one is read at once).

A tick's job is run as the queue runs it (``pipeline.process``), so a test can run it twice, as a retry after a
crash would, or change someone's permission between the tick and its job.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from bot.core import dashboard as D
from bot.core.markers import split_trailing
from bot.github.writes import digest
from bot.run import dashboard, dashboard_board, pipeline
from bot.sandbox.team import Team
from bot.store import Job, Posted
from tests.board_setup import Clock, board, box_of, clock, deliver, edited, post, ticked, waiting_board  # noqa: F401
from tests.conftest import INSTALLATION, post_webhook
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


# ---- the one reply to an edit's ticks -----------------------------------------------------------------------

async def test_a_long_reply_to_an_edits_ticks_leaves_the_oldest_answers_out_whole_and_keeps_the_newest(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any], monkeypatch: Any) -> None:
    """One edit ticked the Retry box of four jobs that are done by now: one reply, each tick's answer a paragraph of
    it; past the reply's limit the oldest answers go, whole, and it says how many, while the newest stays."""
    monkeypatch.setattr(D, "NOTE_LIMIT", 300)  # two of these answers fit
    rt, client = bot
    jobs = []
    for n in range(4):
        p = comment_payload(15, "thanks", login="someone", comment_id=9100 + n)
        sandbox.seed_from_payload(p)
        assert (await post_webhook(client, "issue_comment", p, delivery=f"thanks-{n}")).status == 202
        await rt.jobs.drained(30)
        [job] = await rt.store.jobs_for(f"thanks-{n}")
        jobs.append(int(job["id"]))
    dash = waiting_board["number"]
    for job in jobs:
        clock.later()  # the tick jobs of one edit, one after the other
        await pipeline.process(retry_tick(dash, job, f"{REPO}#15", "maintainer"), rt.deps)
    [reply] = sandbox.comments(REPO, dash)  # one reply for the edit
    text = split_trailing(reply["body"])[0].strip()
    assert text.startswith("_2 earlier answers to this edit's ticks are left out._\n\n")
    gone, answers = D.answers_in(text)
    assert gone == 2 and [a.split(" ")[1] for a in answers] == [str(jobs[2]), str(jobs[3])]  # the newest two, whole
    assert all(a.endswith("so it was not queued again.") for a in answers)
    assert len(text) <= 300


def test_a_reply_counts_what_it_left_out_and_never_says_an_answer_twice() -> None:
    limit = D.NOTE_LIMIT
    answers = [f"Answer {n}: " + "x" * 1_000 for n in range(12)]
    said = ""
    for answer in answers:
        said = D.reply(said, answer) or said
        assert len(said) <= limit
    gone, kept = D.answers_in(said)
    assert said.startswith(f"_{gone} earlier answers to this edit's ticks are left out._\n\n")
    assert gone + len(kept) == 12 and kept == answers[gone:]
    assert D.reply(said, answers[-1]) is None  # said already
    one = D.reply("", "one")
    assert one == f"{D.ANSWER}\none" and D.reply(one, "two") == f"{D.ANSWER}\none\n\n{D.ANSWER}\ntwo"
    assert D.answers_in("one\n\ntwo") == (0, ["one", "two"])  # a reply from before the separators
    huge = D.reply("", "y" * (2 * limit))  # none of the bot's answers is this long: cut, saying so, within the limit
    assert huge is not None and len(huge) <= limit and huge.endswith("_…cut: this post was longer than GitHub allows._")


# ---- what a refresh reads and edits ------------------------------------------------------------------------

async def test_a_job_on_a_repository_without_a_dashboard_tries_none(bot: Any, sandbox: Any, team: Team,
                                                                    caplog: Any) -> None:
    """The config the job read has no dashboard: no refresh is tried (no window taken, no row due, no line)."""
    caplog.set_level(logging.INFO, logger="bot.run.dashboard")
    sandbox.set_file(REPO, ".github/triage-lead.yml", "approval: {not_author: true}\n")
    await post(bot, sandbox, "issues", issue_payload(16, ["api"]))
    assert await bot[0].store.last_config(REPO) is not None  # read, and kept: it says nothing of a dashboard
    assert "the config has no dashboard" not in caplog.text
    assert await bot[0].store.due_dashboards() == []


async def test_a_config_file_gone_since_leaves_the_dashboard_as_it_is(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """The config file removed from the default branch (the last one read said ``dashboard: true``): once the bot's
    view of the repository is read again, the dashboard is neither edited nor opened again."""
    rt, _ = bot
    body = str(waiting_board["body"])
    sandbox.move_file(REPO, ".github/triage-lead.yml", ".github/triage-lead.yml.off")
    rt.deps.views._cache.clear()  # its five minutes are over
    clock.later()
    await post(bot, sandbox, "issues", issue_payload(30, ["api"]))
    assert board(sandbox)["body"] == body and "on #30" not in body
    assert not [w for w in sandbox.writes if w.kind == "issue_edit" and w.number == waiting_board["number"]]


async def test_a_dashboard_record_naming_someone_elses_issue_is_never_edited(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any], caplog: Any) -> None:
    """The store's record of the dashboard names an issue the bot did not open (its body copied, marker and all):
    not edited, and an operator is told."""
    rt, _ = bot
    body = str(waiting_board["body"])
    copied = sandbox.add_issue(REPO, title="dashboard", body=body, user="mallory")
    await rt.store.forget_posted(dashboard_board.mark_of(REPO))
    await rt.store.remember_posted(Posted(marker=dashboard_board.mark_of(REPO), repo=REPO, kind="issue",
                                          github_id=copied["id"], number=copied["number"]))
    clock.later()
    await post(bot, sandbox, "issues", issue_payload(30, ["api"]))
    assert sandbox.issue(REPO, copied["number"])["body"] == body
    assert not [w for w in sandbox.writes if w.kind == "issue_edit" and w.number == copied["number"]]
    assert f"#{copied['number']} is recorded as the dashboard but the bot did not open it" in caplog.text


async def test_a_refresh_that_changes_nothing_makes_no_edit(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    rt, _ = bot
    clock.later()
    assert await dashboard.refresh(await rt.deps.github.installation(INSTALLATION), rt.deps, REPO, INSTALLATION)
    assert not [w for w in sandbox.writes if w.kind == "issue_edit" and w.number == waiting_board["number"]]
    assert await rt.store.due_dashboards() == []


async def test_a_job_naming_its_installation_as_true_lists_on_no_dashboard(bot: Any) -> None:
    """A payload's installation id of the wrong type (``true`` is not installation 1): its failure marks no
    dashboard due."""
    job = Job(id=1, delivery_id="d", thread=f"{REPO}#5", event="issues", attempts=1,
              payload={"repository": {"full_name": REPO}, "installation": {"id": True}})
    assert dashboard_board.installation_of(job) is None
    await dashboard.job_failed(job, bot[0].store, 1.0)
    assert await bot[0].store.due_dashboards() == []


async def test_the_bots_own_dashboard_of_another_repository_is_not_acted_on(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """An issue the bot opened whose marker names another repository's dashboard (one transferred here): a tick on
    it does nothing, though its box names a run of this repository."""
    rt, _ = bot
    body = waiting_board["body"].replace(f"dashboard:{REPO}", "dashboard:someone/else")
    assert body != waiting_board["body"]
    moved = sandbox.add_issue(REPO, title="dashboard", body=body, user=str(rt.deps.bot_login), user_type="Bot")
    clock.later()
    await deliver(bot, sandbox, edited(sandbox, moved["number"], ticked(body, box_of(body, "cancel", 15)), "maintainer"))
    assert (await rt.store.active_run(f"{REPO}#15")).state == "waiting"  # type: ignore[union-attr]


async def test_an_earlier_owners_failed_job_is_neither_listed_nor_retried_by_a_box(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """A failed job stored under this repository's name by another installation (the name's earlier owner): the
    dashboard does not list it, and a Retry box written in for it queues nothing."""
    rt, _ = bot
    sandbox.add_installation(INSTALLATION + 1, "Codertocat")
    sandbox.fail("GET", rf"/repos/{REPO}/git/ref/heads/.+", 422, times=1)
    p = issue_payload(41, ["api"])
    p["installation"]["id"] = INSTALLATION + 1
    await post(bot, sandbox, "issues", p)
    [info] = await rt.store.failed_jobs(f"{REPO}#41")
    clock.later()
    await post(bot, sandbox, "issue_comment", comment_payload(15, "thanks", login="someone"))  # any job: a refresh
    assert "#### Failed jobs (0)" in board(sandbox)["body"]
    await pipeline.process(retry_tick(waiting_board["number"], info.job.id, f"{REPO}#41", "maintainer"), rt.deps)
    assert await state_of(bot, info.job.id) == "failed"
    assert "names no run or job of this repository" in last_note(sandbox, waiting_board["number"])


async def test_a_box_for_a_run_that_ended_does_nothing_to_the_threads_next_run(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """The cancel box of #15's first run, ticked from a page left open after that run was cancelled and a new one
    started on the thread: the new run goes on; the tick's answer says the box's run has ended."""
    rt, _ = bot
    cancel = box_of(waiting_board["body"], "cancel", 15)
    await send(bot, sandbox, "issue_comment", comment_payload(15, "/cancel", comment_id=9201))
    await send(bot, sandbox, "issues", issue_payload(15, ["api"]) | {"action": "labeled", "label": {"name": "api"}})
    second = await rt.store.active_run(f"{REPO}#15")
    assert second is not None and second.id != cancel.split(":")[1]
    clock.later()
    await deliver(bot, sandbox, edited(sandbox, waiting_board["number"], ticked(waiting_board["body"], cancel),
                                       "maintainer", before=waiting_board["body"]))
    assert (await rt.store.active_run(f"{REPO}#15")).id == second.id  # type: ignore[union-attr]
    assert "The run that box was for has ended" in last_note(sandbox, waiting_board["number"])


async def test_a_ticks_job_on_another_thread_than_its_boxs_acts_on_nothing(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any]) -> None:
    """A tick's job runs on the thread of the job its box names, in order with that thread's other work: one found
    on another thread (the dashboard's own) queues nothing."""
    job = await failed_job(bot, sandbox)
    await pipeline.process(retry_tick(waiting_board["number"], job, f"{REPO}#{waiting_board['number']}",
                                      "maintainer"), bot[0].deps)
    assert await state_of(bot, job) == "failed"
    assert "names no run or job of this repository" in last_note(sandbox, waiting_board["number"])


async def test_a_readers_refused_ticks_get_notes_within_the_reply_limit(
        bot: Any, sandbox: Any, team: Team, clock: Clock, waiting_board: dict[str, Any], caplog: Any) -> None:
    """A reader ticking again and again within one minute: each tick is undone, but the note to them is written at
    most ``replies_per_minute`` times (each write is a notification and a rate-limited request); then a log line."""
    body, n = waiting_board["body"], waiting_board["number"]
    cancel, per_minute = box_of(body, "cancel", 15), bot[0].deps.settings.replies_per_minute
    for _ in range(per_minute + 2):
        await deliver(bot, sandbox, edited(sandbox, n, ticked(body, cancel), "reader", before=body))
    notes = [w for w in sandbox.writes if w.kind in ("comment", "comment_edit") and w.number == n]
    assert len(notes) == per_minute and "no dashboard note for reader: over the reply limit" in caplog.text
    assert (await bot[0].store.active_run(f"{REPO}#15")).state == "waiting"  # type: ignore[union-attr]


def test_an_escalation_offers_at_most_nine_option_boxes() -> None:
    """``/approve N`` picks option N of a decision; the board offers the first nine (an escalation's options are
    the model's output: untrusted in number too)."""
    run = D.RunLine("r1", 15, "escalated", "wf", options=tuple(f"option {n}" for n in range(1, 31)), issue="which?")
    body = D.render(D.Board(runs=(run,)))
    approvals = [k for k in D.boxes(body) if k.startswith("approve:")]
    assert len(approvals) == 9 and "approve:r1:9:" in body and "approve:r1:10:" not in body
    assert D.offered(run) == {*approvals, "cancel:r1::"}
