"""Issues and pull requests: a work item starts a run (triage picks the workflow), a push moves one.
"""

from __future__ import annotations

import logging
from typing import Any

from gidgethub.abc import GitHubAPI

from bot.core import config, engine, events, render, triage
from bot.core.markers import marker, trailing
from bot.github.changes import made_by_run
from bot.github.contents import Unreadable
from bot.github.writes import create_issue_once, upsert_comment
from bot.run import pull_review
from bot.run.lockdown import locked_out, tell_once
from bot.run.repo_view import RepoView, read_config_at
from bot.run.runs import Deps, changed_since, resume, start_run
from bot.run.state import RunContext, run_context, stored_head, unreadable
from bot.store import Posted, RunRecord

log = logging.getLogger(__name__)


def own_task(event: events.Event, deps: Deps) -> bool:
    """An issue the bot itself opened for a long-running project's task: that one it does work on."""
    return (isinstance(event, events.WorkItem) and event.action == "opened" and not event.is_pull_request
            and event.sender.login == deps.bot_login and (trailing(event.body) or "").startswith("task:"))


async def _lagging(deps: Deps, item: events.WorkItem, pull: dict[str, Any], old: str | None) -> bool:
    """Whether GitHub's answer may lag behind the push delivered. Naming the run's own head, it lags only if it was
    last updated before the push landed (an older push delivered late, out of order, is nothing new: the answer is
    newer); naming another head judged before, see :func:`pull_review.stale_read`."""
    head, pushed = str(pull["head"]["sha"]), item.head_sha
    if not pushed or pushed == head:
        return False
    if head == old:
        read_at = events.github_time(pull.get("updated_at"))
        return item.updated_at is not None and read_at is not None and read_at < item.updated_at
    return await pull_review.stale_read(deps.store, item.repo, item.number, head, pushed)


async def _on_push(gh: GitHubAPI, deps: Deps, item: events.WorkItem, active: RunRecord | None) -> None:
    """New commits: the run learns the head as GitHub has it now (deliveries arrive out of order, and a
    redelivered old push must not move it back), with the files they change."""
    run = active or await _judged_by(deps, item)
    if run is None:
        log.info("%s: push with no workflow running and no earlier verdict; nothing to judge", item.thread)
        return
    pull = await gh.getitem(f"/repos/{item.repo}/pulls/{item.number}")
    head = str(pull["head"]["sha"])
    old = stored_head(run)  # raw: a push that moves nothing needs no more of the run, however broken the rest
    if await _lagging(deps, item, pull, old):
        # GitHub names a head judged before, the push another: read once more (a replica may lag) before taking it
        # for nothing new, or for a force-push back whose verdict would be given again while the pushed head goes
        # unjudged.
        pull = await gh.getitem(f"/repos/{item.repo}/pulls/{item.number}")
        head = str(pull["head"]["sha"])
        if await _lagging(deps, item, pull, old):
            log.error("%s: push of %s not judged: GitHub still names %s, judged before (its answer lags, or the head "
                      "went back there since, which that push's own delivery judges)", item.thread,
                      (item.head_sha or "")[:7], head[:7])
            return
    if head == old:
        log.info("%s: push event for %s, but the head is still %s; nothing new", item.thread,
                 (item.head_sha or "")[:7], head[:7])
        return
    if active is None and (broken := unreadable(run)) is not None:
        # A finished run holds no thread: failing the job would tell people to /cancel a run that is over, on
        # every push. The verdict stays on the head it judged; the new head simply has none from this run.
        log.error("%s: push to %s not judged: the run that judged this pull request cannot be read (%s)",
                  item.thread, head[:12], broken)
        return
    own = head == item.head_sha and await _own_push(gh, deps, item, run.id)
    paths = None if own or active is None else await changed_since(gh, item.repo, old, head)
    # When the head landed: the push we were told of; or, when GitHub's head is a later push still, the pull's
    # updated_at read with it (an upper bound: an /approve written before it is refused, to be given again).
    at = item.updated_at if head == item.head_sha else events.github_time(pull.get("updated_at"))
    await resume(gh, deps, run, engine.HeadMoved(head, paths, own, at=at), item.delivery_id)


async def _judged_by(deps: Deps, item: events.WorkItem) -> RunRecord | None:
    """The finished run that judged this pull request before: its check must follow the PR's head."""
    known = await deps.store.find_posted(pull_review.judged_marker(item.repo, item.number))
    return await deps.store.load_run(known.url) if known is not None and known.url else None


async def _own_push(gh: GitHubAPI, deps: Deps, item: events.WorkItem, run_id: str) -> bool:
    """The head is this run's own delivered fix: pushed by this App and carrying the run's trailer (a trailer
    anyone can type; the pusher being the App is what makes it ours)."""
    if not deps.bot_login or item.sender.login.lower() != deps.bot_login.lower() or not item.head_sha:
        return False
    commit = await gh.getitem(f"/repos/{item.repo}/git/commits/{item.head_sha}")
    return made_by_run(str(commit.get("message") or ""), run_id)


async def _pull_paths(gh: GitHubAPI, repo: str, number: int) -> list[str]:
    return [f["filename"] async for f in gh.getiter(f"/repos/{repo}/pulls/{number}/files?per_page=100")][:300]


def _ctx(item: events.WorkItem, default_branch: str | None) -> RunContext:
    return run_context(item.repo, item.number, pull=item.is_pull_request, head_sha=item.head_sha, head_ref=item.head_ref,
                       head_repo=item.head_repo, base_sha=item.base_sha, default_branch=default_branch,
                       title=item.title, body=item.body)


async def _report_config(gh: GitHubAPI, deps: Deps, repo: str, view: RepoView) -> None:
    """What the bot could not read or use on the default branch, said once per distinct set of problems."""
    if not view.errors:
        return
    title, body = render.config_problems(view.errors, view.fallback)
    await create_issue_once(gh, deps.store, repo=repo, mark=marker("config-error", view.config_digest),
                            title=title, body=body, labels=[], bot_login=deps.bot_login)


async def _check_config_change(gh: GitHubAPI, deps: Deps, item: events.WorkItem, paths: list[str],
                               view: RepoView) -> None:
    """A PR that changes .github/triage-lead.yml gets a check run saying whether the new file is valid."""
    if config.PATH not in paths or not item.head_sha:
        return
    found = await read_config_at(gh, item.repo, item.head_sha)
    if isinstance(found, Unreadable):
        errors = [f"{config.PATH} could not be read: {found.reason}"]
    else:
        _, errors = config.parse(found.text if found else "", known_workflows=set(deps.catalog.workflows))
    mark = marker("config-check", item.repo, item.head_sha)
    if await deps.store.find_posted(mark) is not None:
        return
    check = await gh.post(f"/repos/{item.repo}/check-runs", data={
        "name": "triage-lead / config", "head_sha": item.head_sha, "status": "completed",
        "conclusion": "failure" if errors else "success",
        "output": {"title": f"{len(errors)} problem(s) in {config.PATH}" if errors else f"{config.PATH} is valid",
                   "summary": render.clip("\n".join(f"- {render.code_span(e)}" for e in errors), 60_000)
                   or "The configuration is valid."}})
    await deps.store.remember_posted(Posted(marker=mark, repo=item.repo, kind="check_run", github_id=check["id"]))


async def on_work_item(item: events.WorkItem, gh: GitHubAPI, deps: Deps) -> None:
    own = await deps.store.load_run(item.delivery_id)
    if own is not None:  # this delivery started a run before the process died: carry on with it
        await resume(gh, deps, own, engine.Start(), item.delivery_id)
        return
    # The delivery names the default branch (as for comments); GitHub is asked only when it does not.
    # (events.branch_name has dropped a name no branch can have; GitHub's own answer is held to the same rule.)
    default_branch = item.default_branch or events.branch_name(
        str((await gh.getitem(f"/repos/{item.repo}")).get("default_branch") or ""))
    view = await deps.view(gh, item.repo, default_branch or "main")
    await _report_config(gh, deps, item.repo, view)
    # The bot's own task issues are its to work on; anyone else in lockdown is told once, and that is all.
    if not own_task(item, deps) and await locked_out(gh, item.repo, item.sender, view.config):
        if item.action != "synchronize":  # a push is not a request; a maintainer's run still follows its head
            await tell_once(gh, deps, item.repo, item.number, item.sender, view.config)
            return
        if await deps.store.active_run(item.thread) is None:
            return
    paths = await _pull_paths(gh, item.repo, item.number) if item.is_pull_request else []
    if item.is_pull_request and item.action in ("opened", "synchronize"):
        await _check_config_change(gh, deps, item, paths, view)
    active = await deps.store.active_run(item.thread)
    if item.action == "synchronize":
        await _on_push(gh, deps, item, active)
        return
    if active is not None:
        if (broken := unreadable(active)) is not None:
            raise broken  # not skipped in silence: the thread hears why, and that `/cancel` frees it (errors.py)
        log.info("%s already has run %s (%s); %s.%s not started",
                 item.thread, active.id, active.state, item.event, item.action)
        return
    label_map = {k.lower(): v for k, v in (view.catalog.triage.get("labels") or {}).items()}
    if item.action == "labeled" and (item.added_label or "").lower() not in label_map:
        log.info("%s: label %r maps to no workflow", item.thread, item.added_label)
        return

    decision = triage.decide(item, view.catalog, paths=paths, enabled=view.config.workflows)
    if own_task(item, deps) and decision.workflow == "long-running-project":
        decision = triage.Decision(None, "a project's task cannot itself be a multi-session project", 0.0, ())
    if decision.workflow is None:
        if item.action in ("opened", "reopened", "ready_for_review") and not view.config.dry_run:
            mark = marker("ask-label", item.thread)
            if await deps.store.find_posted(mark) is not None:  # asked once: reopening again and again costs nothing
                log.info("%s: a label was asked for already; not asking again on %s", item.thread, item.action)
                return
            runs = triage.allowed_workflows(view.catalog, view.config.workflows)
            mapped = {k: v for k, v in (view.catalog.triage.get("labels") or {}).items() if v in runs}
            body = render.ask_for_label(decision.reason, mapped, triage.outweighed(item.labels, mapped, runs))
            await upsert_comment(gh, deps.store, repo=item.repo, number=item.number, mark=mark, body=body,
                                 bot_login=deps.bot_login)
        return
    await start_run(gh, deps, run_id=item.delivery_id, number=item.number,
                    installation_id=item.installation_id, decision=decision,
                    ctx=_ctx(item, default_branch))
