"""Replies to commands, within limits: anyone can comment, so no comment, nor a flood of them, costs many writes.

A reply (and the 👀 reaction, a write too) takes a slot of two window counters kept in the store, so every
worker obeys one limit: ``replies_per_minute`` per person per thread and ``replies_per_hour`` per repository
across its threads. A refused reply posts nothing; the person hears once a minute per thread that they are
over the limit (that note counts in the repository's hour like any reply, so the hour is a ceiling).
Replies are low-priority writes: inside ``replying()`` the write pacer serves the runs' own writes first.
"""

from __future__ import annotations

import logging
import math

from gidgethub.abc import GitHubAPI

from bot.core import events, render
from bot.core.markers import marker
from bot.github.pacing import replying
from bot.github.writes import upsert_comment
from bot.settings import Settings
from bot.store import Store
from bot.store.limits import Limit

log = logging.getLogger(__name__)



def repository_hour(repo: str, settings: Settings) -> Limit:
    """The repository's hourly ceiling on what the bot says to people (replies, notes), across its threads."""
    return (f"reply:{repo}", settings.replies_per_hour, 3600.0)


def reply_limits(c: events.Comment, settings: Settings) -> list[Limit]:
    """Whose replies a reply to ``c`` counts against: the person on this thread, and the repository."""
    return [(f"reply:{c.repo}#{c.number}:{c.sender.login.lower()}", settings.replies_per_minute, 60.0),
            repository_hour(c.repo, settings)]


def note_limits(c: events.Comment, settings: Settings) -> list[Limit]:
    """One over-the-limit note per person per thread a minute, inside the repository's hourly ceiling."""
    return [(f"reply-note:{c.repo}#{c.number}:{c.sender.login.lower()}", 1, 60.0), repository_hour(c.repo, settings)]


async def post_reply(gh: GitHubAPI, store: Store, settings: Settings, c: events.Comment, *, mark: str, body: str,
                     command: str, now: float, bot_login: str | None) -> bool:
    """Post ``body`` answering ``command`` of comment ``c`` if the limits allow (True); else nothing, or the one
    note of this window saying so."""
    wait = await store.take_slots(reply_limits(c, settings), now)
    if wait == 0:
        with replying():
            await upsert_comment(gh, store, repo=c.repo, number=c.number, mark=mark, body=body, bot_login=bot_login)
        return True
    log.warning("%s: no reply to %s by %s (comment %s): over the reply limit (%d a minute per person per thread, "
                "%d an hour per repository); one fits in %.0f s", c.thread, command[:40], c.sender.login,
                c.comment_id, settings.replies_per_minute, settings.replies_per_hour, wait)
    if await store.take_slots(note_limits(c, settings), now) > 0:
        log.info("%s: %s was told of the limit already (or the repository's hour is spent): no note", c.thread,
                 c.sender.login)
        return False
    note = render.over_reply_limit(c.sender.login, command, math.ceil(wait / 60),
                                   per_minute=settings.replies_per_minute, per_hour=settings.replies_per_hour)
    with replying():
        await upsert_comment(gh, store, repo=c.repo, number=c.number, mark=marker("reply-limit", c.comment_id),
                             body=note, bot_login=bot_login)
    return False


async def react(gh: GitHubAPI, store: Store, settings: Settings, c: events.Comment, *, now: float) -> bool:
    """The 👀 on a command taken, if the limits allow; the command acts either way (its run's status shows it)."""
    if await store.take_slots(reply_limits(c, settings), now) > 0:
        log.info("%s: no reaction on comment %s by %s: over the reply limit (the command still acts)", c.thread,
                 c.comment_id, c.sender.login)
        return False
    with replying():
        await gh.post(f"/repos/{c.repo}/issues/comments/{c.comment_id}/reactions", data={"content": "eyes"})
    return True
