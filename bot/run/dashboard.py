"""The dashboard issue (issue 17, point 1): kept up to date after the jobs of a repository whose config says
``dashboard: true``, and the ticks people make on it.

Updates are coalesced: at most one edit a minute per repository (a window counter in the store, shared by every
worker); a refresh is marked due in the store before it tries, and cleared once its edit is made (unless another
change marked it again meanwhile), so one put off by the window, failed, or cut short by a restart is made by
:func:`refresh_due` (the runtime's periodic pass, after a restart too): the last change is never left unshown.
GitHub has no conditional edit: before each edit the bot re-reads the issue and keeps every tick there it has not
acted on yet, so a person's tick made meanwhile is not erased (its own ``issues.edited`` delivery acts on it).

A tick acted on is unticked by the next edit exactly once: each tick has an id (its edit's delivery and its box),
recorded as the box's latest tick when it is queued and as done by its job; an edit unticks a box only when its
done record is its latest tick's, and then forgets that record only while it still holds that id. So two edits of
the same box handled by two workers never let one's record be erased by the other's edit (the box would stay
ticked for good), nor an earlier tick's record untick a later tick its job has not acted on yet.

What both halves read (the board's runs and failed jobs, the ids of ticks and their records, the default branch)
is bot/run/dashboard_board.py's: this module acts on the board, that one reads it.

A tick (bot/core/dashboard.py) is checked against its sender's permission at once: someone without write access
has it undone, with one short note. Any other tick becomes a job on its run's thread (:data:`TICK_EVENT`), so it
runs in order with the thread's other work, and there goes through the comment commands' own path
(bot/run/comments.py ``apply_command``): the same permission check, head checks and answers.
"""

from __future__ import annotations

import logging

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.core import commands, events, render
from bot.core import dashboard as D
from bot.core.markers import marker, split_trailing, trailing, with_marker
from bot.github.client import Uninstalled
from bot.github.pacing import replying
from bot.github.writes import create_issue_once, digest, is_own, upsert_comment
from bot.run.comments import Origin, apply_command, command_applied
from bot.run.dashboard_board import (
    EDIT_WINDOW,
    acted_on,
    branch_of,
    done_mark,
    in_repo,
    installation_of,
    mark_of,
    named,
    number_of,
    read_board,
    run_line,
    tick_id,
    tick_mark,
    wants_dashboard,
)
from bot.run.lockdown import config_of, role_of
from bot.run.replies import repository_hour
from bot.run.runs import Deps
from bot.run.state import RunState, stored_applied, unreadable
from bot.store import Delivery, Job, Posted, Store

log = logging.getLogger(__name__)


async def after_job(gh: GitHubAPI, deps: Deps, repo: str, installation_id: int, branch: str | None = None) -> None:
    """After a job on ``repo``: its dashboard refreshed (or left due) when its config has one. The config is the
    last one the bot read there (kept in the store by every read of it): a job that reads no config costs no
    GitHub read for this. ``branch``: the default branch the job's delivery named, if it did (spares a read). A
    failure here is logged and left due: the job's own work is done, and must not run again for the dashboard's
    sake."""
    named(deps, repo, branch)
    try:
        last = await deps.store.last_config(repo)
        if last is not None and wants_dashboard(last[1], frozenset(deps.catalog.workflows)):
            await refresh(gh, deps, repo, installation_id)
    except Exception:  # left due by refresh
        log.exception("%s: the dashboard could not be refreshed; the next pass tries again", repo)


async def refresh(gh: GitHubAPI, deps: Deps, repo: str, installation_id: int) -> bool:
    """Edit the dashboard now if this minute's edit is free (True); else leave it due for :func:`refresh_due`. Due
    (in the store) from the start, cleared once the edit is made: a failure, or a process that stops, leaves it due;
    a change marked due while the edit was in flight is not cleared with it."""
    marks = await deps.store.mark_due(repo, installation_id, deps.clock())
    wait = await deps.store.take_slots([(f"dashboard:{repo}", 1, EDIT_WINDOW)], deps.clock())
    if wait > 0:
        log.info("%s: dashboard edited less than a minute ago; its refresh is due in %.0f s", repo, wait)
        return False
    await _write(gh, deps, repo, installation_id)
    await deps.store.clear_due(repo, marks)
    return True


async def refresh_due(deps: Deps) -> int:
    """The periodic pass: each refresh put off by the window, made now where the window allows; how many were.
    One repository's failure is logged and stays due; the others go on."""
    made = 0
    for repo, installation_id in await deps.store.due_dashboards():
        try:
            last = await deps.store.last_config(repo)  # a failed job's repository may have no dashboard at all
            if last is None or not wants_dashboard(last[1], frozenset(deps.catalog.workflows)):
                await deps.store.clear_due(repo)
                continue
            made += await refresh(await deps.github.installation(installation_id), deps, repo, installation_id)
        except Uninstalled:  # nothing to edit there any more: not an error every pass, forever
            await deps.store.clear_due(repo)
            log.info("%s: the App is no longer installed; its dashboard is not refreshed", repo)
        except Exception:
            log.exception("%s: the dashboard could not be refreshed; the next pass tries again", repo)
    return made


async def job_failed(job: Job, store: Store, now: float) -> None:
    """A job that failed for good: its repository's dashboard (if it has one) is due, to list it."""
    p = job.payload
    repo = p.get("repo") or (p.get("repository") or {}).get("full_name")
    if isinstance(repo, str) and (installation := installation_of(job)) is not None:
        await store.mark_due(repo, installation, now)



async def _write(gh: GitHubAPI, deps: Deps, repo: str, installation_id: int) -> None:
    """Open the dashboard (once: found again by its marker) or edit it, keeping the ticks not yet acted on."""
    mark = mark_of(repo)
    view = await deps.view(gh, repo, await branch_of(gh, deps, repo))
    if not view.config.dashboard:  # turned off since (or never on: a failed job's repository): left as it is
        log.info("%s: the config has no dashboard: none opened or edited", repo)
        return
    board = await read_board(deps, repo, view.catalog, view.config, installation_id)
    posted = await deps.store.find_posted(mark)
    if posted is None:
        posted, created = await create_issue_once(gh, deps.store, repo=repo, mark=mark, title=D.TITLE,
                                                  body=D.render(board), labels=[], bot_login=deps.bot_login)
        if created:
            log.info("%s: dashboard opened as #%s", repo, posted.number)
            return
    try:  # the re-read just before the edit: what people ticked since the bot last looked is kept
        issue = await gh.getitem(f"/repos/{repo}/issues/{posted.number}")
    except BadRequest as exc:
        if exc.status_code not in (404, 410):
            raise
        await deps.store.forget_posted(mark)  # deleted (or transferred): the next refresh opens a new one
        log.warning("%s: dashboard #%s is gone; a new one is opened next time", repo, posted.number)
        return
    # The number is the bot's own record: its author is checked, not its text, so an edit that left the marker
    # off the end (which also hides the issue's edits from the door) is repaired by this rewrite.
    if not is_own(issue.get("user"), deps.bot_login):
        log.error("%s: #%s is recorded as the dashboard but the bot did not open it; not edited", repo,
                  posted.number)
        return
    current = str(issue.get("body") or "")
    acted = [(box, done) for k, on in D.boxes(current).items() if on and (box := D.Box.parse(k)) is not None
             and (done := await acted_on(deps, repo, box)) is not None]
    kept = {k for k, on in D.boxes(current).items() if on} - {box.key for box, _ in acted}
    body = with_marker(D.render(board, kept), mark)
    if D.as_written(body) != D.as_written(current):  # as posted, the client's defusing aside
        await gh.patch(f"/repos/{repo}/issues/{posted.number}", data={"body": body})
    for box, done in acted:  # unticked now; a record a later tick's job wrote meanwhile stays, for the next edit
        await deps.store.forget_posted(done_mark(repo, box), github_id=done)
        await deps.store.forget_posted(tick_mark(repo, box), github_id=done)



# ---- ticks --------------------------------------------------------------------------------------------


async def on_dashboard_edit(event: events.DashboardEdit, gh: GitHubAPI, deps: Deps, *,
                            written_at: float | None = None, branch: str | None = None) -> None:
    """An edit of a dashboard: each box it ticked, checked against the sender's permission now; refused ticks
    undone with a note, the others queued as jobs on their runs' threads. ``branch``: the default branch the
    delivery named (its ticks' jobs carry it on)."""
    named(deps, event.repo, branch)
    author = {"login": event.author.login, "type": event.author.type}
    if not is_own(author, deps.bot_login) or trailing(event.body) != f"dashboard:{event.repo}":
        log.info("%s: ends with the dashboard's marker but is not the bot's own dashboard: not acted on", event.thread)
        return
    ticked = D.ticks(event.previous_body, event.body)
    if not ticked:
        log.info("%s: dashboard edited by %s without ticking a box", event.thread, event.sender.login)
        return
    if not (await config_of(gh, deps, event.repo, await branch_of(gh, deps, event.repo))).dashboard:
        log.info("%s: the repository's config has the dashboard off: ticks not acted on", event.thread)
        return
    role = await role_of(gh, event.repo, event.sender.login)
    refused = [box for box in ticked if not commands.may_run(box.action, role)]
    for box in ticked:
        if box not in refused:
            await _queue(event, box, deps, written_at, branch)
    if refused:
        log.info("%s: %d tick(s) by %s (%s) undone: no write access", event.thread, len(refused), event.sender.login,
                 role)
        for box in refused:  # the tick, then its done record: never the other way round (see acted_on)
            await _latest_tick(deps, event.repo, box, tick_id(event.delivery_id, box))
            await _acted(deps, event.repo, box, tick_id(event.delivery_id, box))
        who = str(event.sender.id) if event.sender.id is not None else event.sender.login.lower()
        await _note(gh, deps, event.repo, event.number, event.sender.login, D.refused(event.sender.login, role),
                    mark=marker("dashboard-refused", event.repo, digest(who)))
        await refresh(gh, deps, event.repo, event.installation_id)


async def _queue(event: events.DashboardEdit, box: D.Box, deps: Deps, written_at: float | None,
                 branch: str | None) -> None:
    """A tick as a job on the thread of the run (or failed job) it names; once per delivery and box."""
    thread = await _thread_of(deps, event.repo, box, event.installation_id)
    if thread is None:  # a box naming another repository's run, or nothing: answered by the tick's job
        thread = f"{event.repo}#{event.number}"
    payload = {"repo": event.repo, "installation_id": event.installation_id, "box": box.key, "thread": thread,
               "dashboard": event.number, "written_at": written_at, "default_branch": branch,
               "sender": {"login": event.sender.login, "id": event.sender.id, "type": event.sender.type}}
    # The box's latest tick first, then its job: a job that acts before the record is written would find an
    # earlier tick's id there and its own done record would wait for the next edit but one.
    job_id = f"{event.delivery_id}:{digest(box.key)}"
    if await deps.store.jobs_for(job_id) == []:  # a redelivered edit does not make an old tick the latest again
        await _latest_tick(deps, event.repo, box, tick_id(event.delivery_id, box))
    fresh = await deps.store.accept_delivery(Delivery(
        id=job_id, event=D.TICK_EVENT, action=box.action,
        installation_id=event.installation_id, repo=event.repo, thread=thread, payload=payload))
    log.info("%s: %s ticked %s; %s on %s", event.thread, event.sender.login, box.key,
             "queued" if fresh else "queued already", thread)


async def _thread_of(deps: Deps, repo: str, box: D.Box, installation_id: int) -> str | None:
    """The thread of the run or job a box names, when it is one of ``repo``'s (never another repository's, nor a
    run or failed job of another installation's under the same name)."""
    if box.job is not None:
        info = await deps.store.job_info(box.job)
        return (info.job.thread if info is not None and in_repo(info.job.thread, repo)
                and installation_of(info.job) == installation_id else None)
    record = await deps.store.load_run(box.target)
    return (record.thread if record is not None and record.repo == repo and record.installation_id == installation_id
            else None)


async def on_tick(job: Job, deps: Deps) -> str:
    """A tick's job, on its run's thread: the command it stands for, as the comment command would run; its
    answer (if any) as a note on the dashboard. The repository, for the dashboard's refresh."""
    p, repo = job.payload, str(job.payload["repo"])
    box, gh = D.Box.parse(str(p["box"])), await deps.github.installation(int(p["installation_id"]))
    sender = events.Actor(str(p["sender"]["login"]), str(p["sender"]["type"]), p["sender"].get("id"))
    if box is None:
        log.error("tick job %s names no box: %r", job.id, str(p["box"])[:120])
        return repo
    answer = await _apply(gh, deps, job, box, repo, sender.login)
    await _acted(deps, repo, box, tick_id(job.delivery_id.rpartition(":")[0], box))
    if answer:  # the edit's ticks (a tick's job is the edit's delivery id, then its box's) share one reply
        await _answer(gh, deps, repo, int(p["dashboard"]), sender.login, answer,
                      mark=marker("reply", "dashboard", repo, digest(job.delivery_id.rpartition(":")[0])))
    else:
        log.info("%s: %s's tick of %s applied", job.thread, sender.login, box.key)
    return repo


async def _apply(gh: GitHubAPI, deps: Deps, job: Job, box: D.Box, repo: str, actor: str) -> str | None:
    thread = await _thread_of(deps, repo, box, int(job.payload["installation_id"]))
    if thread is None or thread != job.thread:
        return D.nothing_named(box)
    if box.job is not None:
        return await _retry(gh, deps, job, box.job, repo, actor)
    record = await deps.store.active_run(thread)
    is_pull = bool(record is not None and unreadable(record) is None and RunState.open(record).data.ctx.is_pull_request)
    if box.job is None:
        if record is None or record.id != box.target:
            return D.ended(box)
        if box.action == "approve":  # only a box the dashboard offers for the run as it stands now
            line = run_line(record, deps.catalog)
            if box.key not in D.offered(line):
                moved = not box.arg and box.head and line.state == "waiting" and line.head != box.head
                return D.stale(box, line.head) if moved else D.gone(box, line)
    origin = Origin(repo=repo, thread=thread, number=number_of(thread), is_pull_request=is_pull, actor=actor,
                    delivery_id=job.delivery_id, written_at=job.payload.get("written_at"),
                    acted=marker("acted", repo, "box", digest(job.delivery_id)), ack=_nothing,
                    run_id=box.target if box.job is None else None)
    return await apply_command(origin, commands.Parsed(box.action, box.arg), gh, deps)


async def _retry(gh: GitHubAPI, deps: Deps, tick: Job, job_id: int, repo: str, actor: str) -> str | None:
    """A Retry box: the failed job it lists, by its id, and nothing else (``/retry`` on a thread re-runs the run's
    failed work; a box is for the one line it stands under). With ``/retry``'s checks: write access, once per tick,
    and a command's job only once its command was applied (else an old ``/approve`` would approve today's head)."""
    role = await role_of(gh, repo, actor)
    if not commands.may_run("retry", role):
        return render.refusal(actor, "retry", role)
    acted = marker("acted", repo, "box", digest(tick.delivery_id))
    if await deps.store.find_posted(acted) is not None:
        return None
    info = await deps.store.job_info(job_id)
    if info is None or info.state != "failed":
        return D.not_failed(job_id, info.state if info else None)
    active = await deps.store.active_run(info.job.thread)
    if not command_applied(info, stored_applied(active) if active else ()):
        return D.not_applied(job_id)
    queued = await deps.store.requeue_failed(job_id)
    await deps.store.remember_posted(Posted(marker=acted, repo=repo, kind="seen", github_id=0))
    return D.requeued(job_id, queued)


async def _nothing() -> None:
    """A tick's sign that it was taken is the dashboard's next edit (and the run's own status comment)."""


async def _acted(deps: Deps, repo: str, box: D.Box, tick: int) -> None:
    """Tick ``tick`` of ``box`` acted on (or refused): the next edit unticks the box, if it is the latest tick."""
    await deps.store.remember_posted(Posted(marker=done_mark(repo, box), repo=repo, kind="seen", github_id=tick))


async def _latest_tick(deps: Deps, repo: str, box: D.Box, tick: int) -> None:
    await deps.store.remember_posted(Posted(marker=tick_mark(repo, box), repo=repo, kind="seen", github_id=tick))


async def _answer(gh: GitHubAPI, deps: Deps, repo: str, number: int, login: str, answer: str, *, mark: str) -> None:
    """A tick's answer in the one reply its edit gets: the first posts it (within the reply limits), each later one
    adds its answer unless the reply says it already, leaving the oldest out past ``D.NOTE_LIMIT`` (``D.reply``).
    An edit ticking many boxes notifies once, not once a box. Ticks of one edit on different threads may answer at
    once: a line can then be lost, never the tick's own work."""
    known = await deps.store.find_posted(mark)
    said = "" if known is None else await _said(gh, repo, known.github_id)
    body = D.reply(said, answer)
    if body is None:
        return
    if known is None:
        await _note(gh, deps, repo, number, login, body, mark=mark)
        return
    with replying():
        await upsert_comment(gh, deps.store, repo=repo, number=number, mark=mark, known=known, body=body,
                             bot_login=deps.bot_login)


async def _said(gh: GitHubAPI, repo: str, comment_id: int) -> str:
    """What the reply with ``comment_id`` says now, without its marker ("" when someone deleted it: posted again)."""
    try:
        said = str((await gh.getitem(f"/repos/{repo}/issues/comments/{comment_id}")).get("body") or "")
    except BadRequest as exc:
        if exc.status_code != 404:
            raise
        return ""
    return split_trailing(said)[0]


async def _note(gh: GitHubAPI, deps: Deps, repo: str, number: int, login: str, body: str, *, mark: str) -> None:
    """A short note on the dashboard, within the reply limits (per person there a minute, the repository's hour).
    ``body`` is the bot's own bounded text (``D.refused``, ``D.reply``): no cut here; the GitHub client's own cut
    of every write would keep the marker, were one ever needed."""
    limits = [(f"reply:{repo}#{number}:{login.lower()}", deps.settings.replies_per_minute, 60.0),
              repository_hour(repo, deps.settings)]
    if (wait := await deps.store.take_slots(limits, deps.clock())) > 0:
        log.warning("%s#%s: no dashboard note for %s: over the reply limit (one fits in %.0f s)", repo, number,
                    login, wait)
        return
    with replying():
        await upsert_comment(gh, deps.store, repo=repo, number=number, mark=mark, body=body, bot_login=deps.bot_login)
