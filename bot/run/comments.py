"""Comments: the one command a comment holds, checked against who sent it, then applied to the thread's run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.core import commands, engine, events, render
from bot.core.dashboard import TICK_EVENT
from bot.core.markers import marker
from bot.github.writes import digest
from bot.run import replies
from bot.run.lockdown import config_of, locked_out, role_of, tell_once
from bot.run.runs import Deps, changed_since, resume
from bot.run.state import RunState, StoredRunError, stored_applied, stored_head, unreadable
from bot.store import JobInfo, Posted, RunRecord

log = logging.getLogger(__name__)


async def _requeue_failed(deps: Deps, thread: str) -> bool:
    """``/retry`` first re-runs the thread's failed jobs (oldest first; they run after this one, in order).

    A command's job only once its command was applied to the run (what is left is the run's own outbox, such
    as delivering the approved change): re-run before that, someone's old `/approve` would approve whatever
    the head is by then. Such a command is run again by commenting it again (a dashboard's tick: ticking it
    again); its failure note says so. Old failures of earlier runs stay as they are: `/retry` is about the
    work at hand."""
    active = await deps.store.active_run(thread)
    applied = stored_applied(active) if active is not None else ()  # raw: /retry works whatever else is broken
    # Only this run's: the jobs since the one that started it. With no run, the newest failure alone.
    started = [r["id"] for r in await deps.store.jobs_for(active.id)] if active is not None else []

    failed = sorted((i for i in await deps.store.failed_jobs(thread, limit=10) if command_applied(i, applied)),
                    key=lambda i: i.job.id)
    failed = [i for i in failed if i.job.id >= started[0]] if started else failed[-1:]
    return any([await deps.store.requeue_failed(info.job.id) for info in failed])


def command_applied(info: JobInfo, applied: Iterable[str]) -> bool:
    """Whether failed job ``info`` may run again: it was no command (a comment's or a dashboard tick's), or its
    command was applied to the run (``applied``: the run's applied delivery ids, each ``<delivery>:...`` for a
    command's). Re-run before that, an old ``/approve`` would approve whatever the head is by then."""
    commanded = info.job.event in ("issue_comment", TICK_EVENT)
    return not commanded or any(a.startswith(f"{info.job.delivery_id}:") for a in applied)


async def on_comment(c: events.Comment, gh: GitHubAPI, deps: Deps) -> None:
    previous = c.previous_body if c.action == "edited" else None
    if commands.request(c.body, previous).command is None:
        log.info("%s: comment %s holds no new command", c.thread, c.comment_id)
        return
    # Re-read the comment: act only on commands still there, so an edit after the event cannot swap them.
    try:
        fresh = await gh.getitem(f"/repos/{c.repo}/issues/comments/{c.comment_id}")
    except BadRequest as exc:
        if exc.status_code == 404:
            return  # deleted since
        raise
    # A body GitHub left out (it is optional in the description) says nothing of an edit: keep the event's.
    req = commands.request(c.body, previous, fresh["body"] if isinstance(fresh.get("body"), str) else c.body)
    if req.command is None:
        log.info("%s: the command of comment %s was edited away before it ran", c.thread, c.comment_id)
        return
    if await locked_out(gh, c.repo, c.sender, cfg := await config_of(gh, deps, c.repo, c.default_branch)):
        await tell_once(gh, deps, c.repo, c.number, c.sender, cfg)
        return
    if req.ignored:
        log.info("%s: comment %s: acting on %s only, %d other command lines ignored", c.thread, c.comment_id,
                 req.command.line[:40], len(req.ignored))
    answer = await _command(c, req.command, gh, deps)
    if req.ignored:  # named in the same one reply (or, for a command whose effect is its answer, alone)
        answer = "\n\n".join(filter(None, [answer, render.ignored_commands(req.command.line, req.ignored_lines())]))
    if answer:
        cmd = req.command
        await replies.post_reply(gh, deps.store, deps.settings, c, body=render.clip(answer), command=cmd.line,
                                 mark=marker("reply", c.comment_id, digest(f"{c.comment_id}:{cmd.name}:{cmd.arg}")),
                                 now=deps.clock(), bot_login=deps.bot_login)


@dataclass(frozen=True)
class Origin:
    """Who asks for a command and from where: a comment on the run's thread, or a tick on the dashboard
    (bot/run/dashboard.py). Both go through :func:`apply_command`, so a tick has a comment's checks."""

    repo: str
    thread: str  # the thread the command is for: "owner/repo#N" (or the repository's, for CI on a branch)
    number: int | None
    is_pull_request: bool
    actor: str  # whoever made the delivery: a comment's author or editor, a tick's sender
    delivery_id: str
    written_at: float | None  # when the comment or the tick was written (GitHub's clock; None: unknown)
    acted: str  # the marker recording that the command was acted on: an edit or a re-run does not act twice
    ack: Callable[[], Awaitable[object]]  # the sign the command was taken: a comment's 👀 (a tick's: the dashboard)
    run_id: str | None = None  # a tick names its run: another run on the thread is not the one it was for


def _origin(c: events.Comment, cmd: commands.Parsed, gh: GitHubAPI, deps: Deps) -> Origin:
    # Whoever made this delivery commands: on an edit that is the editor (GitHub lets an App or an admin edit
    # anyone's comment), never the comment's author.
    return Origin(repo=c.repo, thread=c.thread, number=c.number, is_pull_request=c.is_pull_request,
                  actor=c.sender.login, delivery_id=c.delivery_id, written_at=c.written_at,
                  acted=marker("acted", c.repo, c.comment_id, digest(cmd.name, cmd.arg)),
                  ack=lambda: replies.react(gh, deps.store, deps.settings, c, now=deps.clock()))


async def _command(c: events.Comment, cmd: commands.Parsed, gh: GitHubAPI, deps: Deps) -> str | None:
    """Act on a comment's one command; the reply to post (None when the command's effect is its answer)."""
    if not cmd.known:  # a near miss of ours (commands.request keeps no other unknown word)
        return render.unknown_command(cmd.name, cmd.guess or "help")
    if cmd.name == "help":
        return render.help_text()
    if cmd.name == "status":
        return _status(await deps.store.active_run(f"{c.repo}#{c.number}"), deps)
    return await apply_command(_origin(c, cmd, gh, deps), cmd, gh, deps)


async def apply_command(o: Origin, cmd: commands.Parsed, gh: GitHubAPI, deps: Deps) -> str | None:
    """Apply ``/approve``, ``/escalate``, ``/retry`` or ``/cancel`` to the thread's run, as ``o.actor`` (whose
    permission is asked of GitHub now); the answer to post (None when the command's effect is its answer)."""
    active = await deps.store.active_run(o.thread)
    role = await role_of(gh, o.repo, o.actor)
    if not commands.may_run(cmd.name, role):
        return render.refusal(o.actor, cmd.name, role)
    if await deps.store.find_posted(o.acted) is not None:
        log.info("%s: /%s of delivery %s was acted on already; an edit does not run it twice", o.thread, cmd.name,
                 o.delivery_id)
        return None
    if cmd.name == "retry" and await _requeue_failed(deps, o.thread):
        await o.ack()
        await deps.store.remember_posted(Posted(marker=o.acted, repo=o.repo, kind="seen", github_id=0))
        return "The work that failed on this thread is queued again."
    if active is None or (o.run_id is not None and active.id != o.run_id):
        return f"No triage-lead workflow is running on this thread, so `/{cmd.name}` has nothing to act on."
    if cmd.name == "cancel" and (broken := unreadable(active)) is not None:
        return await _cancel_unreadable(o, gh, deps, active, broken)
    head, moved, head_at = None, None, None
    if o.is_pull_request:
        pull = await gh.getitem(f"/repos/{o.repo}/pulls/{o.number}")
        head = str(pull["head"]["sha"])  # the head now, not the one a lost push event would have told us
        head_at = events.github_time(pull.get("updated_at"))
        if cmd.name == "approve" and await _author_may_not_approve(gh, deps, o.repo, o.actor, pull):
            return (f"@{o.actor} opened this pull request, and this repository's configuration "
                    "(`approval: {not_author: true}`) asks someone else to approve the bot's change to it.")
        old = stored_head(active)
        if old and head != old:
            moved = await changed_since(gh, o.repo, old, head)
    reason = cmd.arg if cmd.name in ("escalate", "approve") else ""  # /approve budget: what is approved
    signal = engine.Command(cmd.name, o.actor, option=cmd.option, reason=reason,
                            head_sha=head, moved=moved, written_at=o.written_at, head_at=head_at)
    delivery = f"{o.delivery_id}:{cmd.name}:{cmd.arg}"
    unchanged, delivers = await _changes_nothing(gh, deps, active, signal, delivery)
    if unchanged is None:
        if not delivers:  # a delivery's completion comment, posted by this same job, is the command's answer
            await o.ack()
        await resume(gh, deps, active, signal, delivery)
    await deps.store.remember_posted(Posted(marker=o.acted, repo=o.repo, kind="seen", github_id=0))
    return unchanged


async def _cancel_unreadable(o: Origin, gh: GitHubAPI, deps: Deps, record: RunRecord, why: StoredRunError) -> str:
    """``/cancel`` of a run whose stored state cannot be read: the engine cannot end it, so the store marks the
    record cancelled as it is (its data kept for the operators) and the thread is free for a new run."""
    log.warning("%s: run %s cancelled by %s without reading its state: %s", o.thread, record.id, o.actor, why)
    await deps.store.save_run(dataclasses.replace(record, state=engine.CANCELLED))
    await o.ack()
    await deps.store.remember_posted(Posted(marker=o.acted, repo=o.repo, kind="seen", github_id=0))
    return (f"Run {render.code_span(record.id, 80)} is cancelled. Its stored state could not be read, so it ended "
            "where it stood (its status comment, if any, still shows it as it was). The next event on this thread "
            "starts a new run.")


def _status(active: RunRecord | None, deps: Deps) -> str:
    if active is None:
        return "No triage-lead workflow is running on this thread."
    state = RunState.open(active)
    wf = deps.catalog.workflows[state.run.workflow]
    body = render.status(state.run, wf, announce=state.data.announce or "", usage=dataclasses.asdict(state.data.usage),
                         links=state.data.links)
    if any(step.kind == "context" for step in wf.steps):  # a project: the handoff travels with /status
        body += "\n\n" + render.context_document(state.run, wf)
    return body


async def _changes_nothing(gh: GitHubAPI, deps: Deps, record: RunRecord, signal: engine.Command,
                           delivery: str) -> tuple[str | None, bool]:
    """What the engine answers a command that changes nothing (``/retry`` with nothing failed, ``/approve`` with
    nothing waiting): that answer is a reply like any other, under the reply limits, and the run is left as it
    is. None when the command changes the run (or was applied already, and its outbox is still to be worked):
    then it goes through the executor. Second: whether the command ends the run's wait with a delivery (the
    approved change and its completion comment, right after in this job), which then needs no 👀 of its own:
    one GitHub write fewer per approval (issue 16)."""
    state = RunState.open(record)
    if delivery in state.data.applied:
        return None, False
    view = await deps.view(gh, state.data.ctx.repo, state.data.ctx.branch)
    after, actions = engine.advance(state.run, signal, view.catalog.workflows[state.run.workflow])
    if not actions or not all(isinstance(a, engine.Reply) for a in actions) or after.to_dict() != state.run.to_dict():
        # A dry run posts no completion comment: there the 👀 stays the command's answer.
        return None, not view.config.dry_run and any(isinstance(a, engine.Finish) for a in actions)
    return "\n\n".join(a.text for a in actions if isinstance(a, engine.Reply)), False


async def _author_may_not_approve(gh: GitHubAPI, deps: Deps, repo: str, actor: str, pull: dict[str, Any]) -> bool:
    """Separation of duties, when the repository asks for it: a PR's author does not approve the bot's change."""
    view = await deps.view(gh, repo, str((pull.get("base") or {}).get("repo", {}).get("default_branch") or "main"))
    author = str((pull.get("user") or {}).get("login") or "")
    return view.config.approval_not_author and author.lower() == actor.lower()
