"""One job, end to end: the stored delivery → a typed event → the handler of its kind → the engine.

Each handler first decides (pure: triage, command parsing, the engine) and then acts through the
executor: work items in bot/run/work.py, comments and their commands in comments.py, CI failures (and the
success that makes one flaky) in ci.py; bot/run/runs.py starts and resumes runs. Errors a person should read
become comments; the rest are log lines for operators. After each job on a repository whose config has a
dashboard, its dashboard is refreshed (bot/run/dashboard.py: at most one edit a minute; ``refresh_due`` is the
periodic pass that makes the refreshes the window put off). A tick on the dashboard comes back as a job of its
own (``TICK_EVENT``) on its run's thread.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.core import events
from bot.core.dashboard import TICK_EVENT
from bot.run.ci import on_ci_failure, on_ci_success
from bot.run.comments import on_comment
from bot.run.dashboard import after_job, job_failed, on_dashboard_edit, on_tick, refresh_due
from bot.run.merged import on_pull_closed, on_pull_merged
from bot.run.runs import Deps
from bot.run.work import on_work_item, own_task
from bot.store import Job

__all__ = ["Deps", "job_failed", "process", "refresh_due"]

log = logging.getLogger(__name__)


async def process(job: Job, deps: Deps) -> None:
    if job.event == TICK_EVENT:  # queued by the bot itself (bot/run/dashboard.py), never by a delivery
        repo = await on_tick(job, deps)
        gh = await deps.github.installation(int(job.payload["installation_id"]))
        await after_job(gh, deps, repo, int(job.payload["installation_id"]), branch=default_branch(job.payload))
        return
    event = events.parse(job.event, job.payload, job.delivery_id)
    if isinstance(event, events.CiSuccess):  # the server queued it: a failure of this check here was posted
        await on_ci_success(event, await deps.github.installation(event.installation_id), deps)
        return
    if isinstance(event, (events.Ignored, events.Malformed)):
        log.info("job %s: %s", job.id, event.reason)  # the server filtered these; payload kept for audit
        return
    if events.is_self_or_foreign_bot(event, deps.bot_login, deps.settings.bot_allowlist) and not own_task(event, deps):
        log.info("job %s: %s by a bot account, not acted on", job.id, event.event)
        return
    if isinstance(event, events.Installation):
        log.info("installation %s %s", event.installation_id, event.action)
        return
    if isinstance(event, events.PullClosed):  # closed unmerged or reopened: the store's note, nothing on GitHub (no
        await on_pull_closed(event, deps)  # token asked for; the dashboard shows no closed pull request's findings)
        return
    gh = await deps.github.installation(event.installation_id)
    if isinstance(event, events.WorkItem):
        await on_work_item(event, gh, deps)
    elif isinstance(event, events.Comment):
        await on_comment(event, gh, deps)
    elif isinstance(event, events.CiFailure):
        await on_ci_failure(event, gh, deps)
    elif isinstance(event, events.DashboardEdit):  # it refreshes the dashboard itself, when it has to
        issue = job.payload.get("issue")  # when the edit was made: GitHub's clock, as a comment's written_at
        await on_dashboard_edit(event, gh, deps, branch=default_branch(job.payload),
                                written_at=events.github_time(issue.get("updated_at") if isinstance(issue, dict) else None))
        return
    elif isinstance(event, events.PullMerged):
        await on_pull_merged(event, gh, deps)
    await after_job(gh, deps, event.repo, event.installation_id, branch=default_branch(job.payload))


def default_branch(payload: dict[str, Any]) -> str | None:
    """The repository's default branch as the delivery names it (a tick's job: as its dashboard edit's did), so a
    renamed one is seen by the dashboard at once, not when its cached name expires. None for a name no branch can
    have: the dashboard caches it and reads config at it (a request path, where ``..`` would climb elsewhere)."""
    repository = payload.get("repository")
    named = repository.get("default_branch") if isinstance(repository, dict) else payload.get("default_branch")
    return events.branch_name(named) if isinstance(named, str) else None
