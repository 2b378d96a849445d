"""Idempotent writes: GitHub has no idempotency key, so the bot's own hidden marker serves as one.

Before creating, the bot looks for its marker (in the store, then on GitHub itself, in case the post
landed but the process died before recording it), so a retried or resumed step edits instead of
posting twice.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import quote

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.core.markers import markers_in, trailing, with_marker
from bot.store import Posted, Store

log = logging.getLogger(__name__)


def is_own(user: Any, bot_login: str | None) -> bool:
    """Whether an account is this App's bot: a Bot account with this App's login. Until the login is known
    nothing counts as the bot's own (another App's bot, or github-actions echoing a user's text, must never be
    able to plant a marker the bot would then edit or believe); the store's records still find what it posted."""
    if not bot_login or not isinstance(user, dict):
        return False
    return user.get("type") == "Bot" and str(user.get("login", "")).lower() == bot_login.lower()


def is_own_marked(item: Any, key: str, bot_login: str | None) -> bool:
    """Whether a comment, review or issue is the bot's own and ends with marker ``key``."""
    return isinstance(item, dict) and is_own(item.get("user"), bot_login) and trailing(item.get("body")) == key


async def _find_comment(gh: GitHubAPI, repo: str, number: int, key: str,
                        bot_login: str | None) -> dict[str, Any] | None:
    """The bot's own comment on a thread carrying marker ``key``."""
    async for comment in gh.getiter(f"/repos/{repo}/issues/{number}/comments?per_page=100"):
        if is_own_marked(comment, key, bot_login):
            return comment
    return None


async def own_comments(gh: GitHubAPI, repo: str, number: int, bot_login: str | None) -> dict[str, dict[str, Any]]:
    """The bot's own marked comments on a thread, by marker key (the first of each key), in one listing."""
    found: dict[str, dict[str, Any]] = {}
    async for comment in gh.getiter(f"/repos/{repo}/issues/{number}/comments?per_page=100"):
        key = trailing(comment.get("body")) if isinstance(comment, dict) else None
        if key is not None and key not in found and is_own_marked(comment, key, bot_login):
            found[key] = comment
    return found


def comment_posted(comment: dict[str, Any], *, mark: str, repo: str, number: int) -> Posted:
    """The record of one of the bot's comments on a thread, carrying ``mark``."""
    return Posted(marker=mark, repo=repo, kind="comment", github_id=comment["id"], number=number,
                  url=comment.get("html_url"))


class Ask:
    """``upsert_comment``'s default for ``known``: ask the store, then the thread."""


ASK = Ask()


async def upsert_comment(gh: GitHubAPI, store: Store, *, repo: str, number: int, mark: str, body: str,
                         bot_login: str | None = None, known: Posted | None | Ask = ASK,
                         remember: bool = True) -> Posted:
    """Create the comment carrying ``mark`` on a thread, or edit it if it already exists.

    The store remembers what was posted; if the store lost it (or the post landed but the process
    died before recording it), the thread itself is searched for the marker before creating.
    ``known``: the caller has done that search already (bot/run/writes.py's ``RunPosts``): the store's record
    of ``mark``, or None when nothing carries it; neither the store nor the thread is asked again.
    ``remember=False``: a comment posted anew is not recorded here; the caller stores the record returned (with
    the run it belongs to, in one transaction).
    """
    text = with_marker(body, mark)
    if isinstance(known, Ask):
        known = await store.find_posted(mark)
        if known is None:
            found = await _find_comment(gh, repo, number, markers_in(mark)[0], bot_login)
            if found is not None:
                known = comment_posted(found, mark=mark, repo=repo, number=number)
        recorded = False
    else:
        recorded = True  # the caller's record is the store's
    if known is not None:
        try:
            await gh.patch(f"/repos/{repo}/issues/comments/{known.github_id}", data={"body": text})
        except BadRequest as exc:
            if exc.status_code != 404:
                raise
            log.info("comment %s for %s was deleted on GitHub; posting it again", known.github_id,
                     markers_in(mark)[0])
        else:
            if not recorded:
                await store.remember_posted(known)
            return known
    created = await gh.post(f"/repos/{repo}/issues/{number}/comments", data={"body": text})
    posted = comment_posted(created, mark=mark, repo=repo, number=number)
    if remember:
        await store.remember_posted(posted)
    return posted


BOT_LABEL = "triage-lead"  # on every issue the bot opens: for people; the bot finds its own by creator


async def _find_issue(gh: GitHubAPI, repo: str, key: str, bot_login: str | None) -> dict[str, Any] | None:
    """The bot's issue carrying marker ``key``, open or closed, from a listing (consistent at once, where search
    lags by seconds and a retried step would file a duplicate): of the issues the bot created, which no person can
    add to or take from (anyone who can triage can put the bot's label on a thousand issues, or rename or delete
    it); by the bot's label only while the bot's login is unknown (and then nothing passes for its own anyway)."""
    which = f"creator={_quote(bot_login)}" if bot_login else f"labels={_quote(BOT_LABEL)}"
    async for issue in gh.getiter(f"/repos/{repo}/issues?{which}&state=all&per_page=100"):
        if is_own_marked(issue, key, bot_login):
            return issue
    return None


async def find_issue(gh: GitHubAPI, store: Store, repo: str, mark: str, bot_login: str | None = None) -> Posted | None:
    """The bot's issue carrying ``mark``, looked for only: in the store, then on GitHub (recorded when found there)."""
    known = await store.find_posted(mark)
    if known is None:
        found = await _find_issue(gh, repo, markers_in(mark)[0], bot_login)
        if found is not None:
            known = Posted(marker=mark, repo=repo, kind="issue", github_id=found["id"], number=found["number"],
                           url=found.get("html_url"))
            await store.remember_posted(known)
    return known


async def create_issue_once(gh: GitHubAPI, store: Store, *, repo: str, mark: str, title: str, body: str,
                            labels: list[str], bot_login: str | None = None) -> tuple[Posted, bool]:
    """Open an issue carrying ``mark`` (and the bot's label) unless one already exists; (issue, created?)."""
    if (known := await find_issue(gh, store, repo, mark, bot_login)) is not None:
        return known, False
    issue = await gh.post(f"/repos/{repo}/issues", data={"title": title, "body": with_marker(body, mark),
                                                         "labels": [*labels, BOT_LABEL]})
    posted = Posted(marker=mark, repo=repo, kind="issue", github_id=issue["id"], number=issue["number"],
                    url=issue.get("html_url"))
    await store.remember_posted(posted)
    return posted, True


def _quote(text: str) -> str:
    return quote(text, safe="")


def digest(*parts: str) -> str:
    return hashlib.sha1("\x00".join(parts).encode()).hexdigest()[:16]
