"""One job, end to end: the stored delivery → a typed event → what the bot does about it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot import events, render
from bot.executor import upsert_comment
from bot.github.client import GitHubApp
from bot.markers import marker
from bot.settings import Settings
from bot.store import Job, Store

log = logging.getLogger(__name__)


@dataclass
class Deps:
    """What a job needs from the outside world."""

    settings: Settings
    store: Store
    github: GitHubApp
    bot_login: str | None = None


async def process(job: Job, deps: Deps) -> None:
    event = events.parse(job.event, job.payload, job.delivery_id)
    if isinstance(event, (events.Ignored, events.Malformed)):
        log.info("job %s: %s", job.id, event.reason)  # the server filtered these; payload kept for audit
        return
    if events.is_self_or_foreign_bot(event, deps.bot_login, deps.settings.bot_allowlist):
        log.info("job %s: %s by bot account, not acted on", job.id, event.event)
        return
    if isinstance(event, events.WorkItem) and event.action in ("opened", "reopened"):
        gh = await deps.github.installation(event.installation_id)
        posted = await upsert_comment(gh, deps.store, repo=event.repo, number=event.number,
                                      mark=marker("ack", event.thread), body=render.acknowledgement(event))
        log.info("job %s: acknowledged %s (comment %s)", job.id, event.thread, posted.github_id)
        return
    log.info("job %s: %s.%s on %s has no handler yet", job.id, event.event, event.action, event.thread)
