"""One job, end to end: the stored delivery → a typed event → the handler of its kind → the engine.

Each handler first decides (pure: triage, command parsing, the engine) and then acts through the
executor: work items in bot/run/work.py, comments and their commands in comments.py, CI failures (and the
success that makes one flaky) in ci.py; bot/run/runs.py starts and resumes runs. Errors a person should read
become comments; the rest are log lines for operators.
"""

from __future__ import annotations

import logging

from bot.core import events
from bot.run.ci import on_ci_failure, on_ci_success
from bot.run.comments import on_comment
from bot.run.dashboard import on_dashboard_edit
from bot.run.merged import on_pull_merged
from bot.run.runs import Deps
from bot.run.work import on_work_item, own_task
from bot.store import Job

__all__ = ["Deps", "process"]

log = logging.getLogger(__name__)


async def process(job: Job, deps: Deps) -> None:
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
    gh = await deps.github.installation(event.installation_id)
    if isinstance(event, events.WorkItem):
        await on_work_item(event, gh, deps)
    elif isinstance(event, events.Comment):
        await on_comment(event, gh, deps)
    elif isinstance(event, events.CiFailure):
        await on_ci_failure(event, gh, deps)
    elif isinstance(event, events.DashboardEdit):
        await on_dashboard_edit(event, gh, deps)
    elif isinstance(event, events.PullMerged):
        await on_pull_merged(event, gh, deps)
