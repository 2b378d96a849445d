"""A merged pull request (issue 17, point 2): the findings of its review still open at the merge become tech-debt
issues, one per finding, filed once (the same finding, by its stable id, is never filed twice in a repository).

A tech-debt issue a person closed says what they decided: closed as not planned (or as a duplicate), the debt is
accepted or tracked elsewhere and is never filed again; closed as completed while a later merge still has the
finding, the fix did not hold, and it is filed again, linking the closed one (a chain: each closed issue's own
marker leads to the next). A tech-debt issue closed with no reason (by a GitHub older than ``state_reason``, or an
integration that gave none) is a person's decision all the same, and is not filed again.

The issue's marker is public, and a credential finding's id derives from the credential: unkeyed, a low-entropy
password would be recoverable from the marker by trying a dictionary. So the marker is an HMAC of the id under a key
only the App holds (:func:`finding_key`, from its webhook secret); issues filed under the unkeyed marker of before
are still found by it (:func:`debt_marker` with no key). A rotated webhook secret changes every keyed marker: each
issue filed is kept in the store under a private marker too (:func:`filed_marker`, never posted, so unkeyed), and
looked up there first, so a rotation files nothing twice. The order makes a crash safe: before the issue is
created, the marker it will carry is noted under the private marker (``intend_filing``), and a retry files under
the marker noted, so after a crash and a rotation the issue is still found by the marker it carries (in the store,
or on GitHub by the bot's label), never filed again under the new key's.

Issues filed before the private marker existed are in the store under their keyed marker only, and an HMAC cannot
be turned back into its finding: :func:`backfill` finds them from the findings the store still holds (a merged pull
request's were kept then), under the key of now, once per process before its first filing. What it cannot reach:
an issue whose pull request's findings are gone, or whose key was rotated away before this ran.

``pull_request.closed`` with ``merged: true`` files here; closed unmerged (its findings never reached the default
branch) and reopened only note the close for retention (:func:`on_pull_closed`). The findings are the store's
(bot/run/pull_review.py keeps them per head); a pull request the bot never reviewed has none, and nothing is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import time
import weakref
from typing import Any

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.core import events, review_texts
from bot.core import findings as F
from bot.core.markers import marker, markers_in
from bot.github.writes import create_issue_once, digest
from bot.run.runs import Deps
from bot.store import Posted, Store

log = logging.getLogger(__name__)

MAX_DEBT = 10  # issues filed per merge: a runaway review cannot flood the tracker
LABELS = ["tech-debt"]
MAX_AGAIN = 5  # closed-as-completed issues followed for one finding before it is filed again
UNSTATED = "no reason given"  # a closed issue's state_reason when GitHub has none
KEY_LABEL = b"triage-lead finding ids v1"


def finding_key(webhook_secret: str | None) -> bytes | None:
    """The key of the public markers made from finding ids: one the App holds and no reader of an issue does. None
    without a webhook secret (then the markers are made as before keys were)."""
    return hmac.new(webhook_secret.encode(), KEY_LABEL, hashlib.sha256).digest() if webhook_secret else None


def debt_marker(repo: str, t: F.Tracked, after: int | None = None, key: bytes | None = None) -> str:
    """A finding's tech-debt issue: by repository and finding id, whichever pull request left it open. An id
    leaves a finding's text out; where it names no line of code (no test changed, a model finding without a place
    or off the diff) it is the same for unrelated findings of two pull requests, so there the text is part of
    the key: one pull request's debt must never pass for filed by another's. ``key``: :func:`finding_key`'s (None:
    the unkeyed marker issues were filed under before)."""
    anchored = t.source == F.CHECK and t.path is not None and t.line is not None
    parts = (repo, t.id) if anchored else (repo, t.id, F.normalise(t.text))
    mark = (hmac.new(key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()[:16] if key is not None
            else digest(*parts))
    return marker("finding-debt", mark if after is None else digest(mark, "after", str(after)))


def filed_marker(repo: str, t: F.Tracked, after: int | None = None) -> str:
    """The store's own note of a finding's tech-debt issue: never posted, so not keyed, and the same whatever the
    webhook secret is (a keyed marker changes with it)."""
    return marker("finding-debt-filed", digest(markers_in(debt_marker(repo, t, after))[0]))


async def _closed_how(gh: GitHubAPI, repo: str, number: int) -> str | None:
    """None while the issue is open; else why it was closed (GitHub's state_reason; "gone" if it cannot be read:
    deleted or moved, which a person did, and the bot does not undo; and if the number is a pull request's: not the
    issue the bot filed, and a merged pull request reads as closed with no reason); UNSTATED for an issue closed
    with no reason."""
    try:
        issue = await gh.getitem(f"/repos/{repo}/issues/{number}")
    except BadRequest as exc:
        if exc.status_code not in (404, 410):
            raise
        return "gone"
    if issue.get("pull_request") is not None:
        return "gone"
    return None if issue.get("state") != "closed" else str(issue.get("state_reason") or UNSTATED)


async def _file(gh: GitHubAPI, deps: Deps, event: events.PullMerged, t: F.Tracked, sha: str) -> str:
    """The finding's tech-debt issue, filed unless one is open or a person closed it as settled; what became of it."""
    before: Posted | None = None
    key = finding_key(deps.settings.webhook_secret)
    for _ in range(MAX_AGAIN):
        title, body = review_texts.debt_issue(t, event.number, sha, closed=before.number if before else None)
        after = before.number if before else None
        own = filed_marker(event.repo, t, after)  # first: it outlives a rotated webhook secret
        posted, created = await deps.store.find_posted(own), False
        if posted is None:
            legacy = await deps.store.find_posted(debt_marker(event.repo, t, after)) if key is not None else None
            if legacy is not None:
                posted = legacy
            else:  # noted before the issue exists: a retry files under this marker, whatever the key is by then
                mark = await deps.store.intend_filing(own, event.repo, debt_marker(event.repo, t, after, key))
                posted, created = await create_issue_once(gh, deps.store, repo=event.repo, mark=mark, title=title,
                                                          body=body, labels=LABELS, bot_login=deps.bot_login)
            await deps.store.remember_posted(dataclasses.replace(posted, marker=own))
        if created:
            return f"#{posted.number}" + (f" (again: #{before.number} was closed as completed)" if before else "")
        how = await _closed_how(gh, event.repo, int(posted.number or 0))
        if how is None:
            return f"#{posted.number} (filed before)"
        if how != "completed":
            return f"#{posted.number} (closed {'with' if how == UNSTATED else 'as'} {how}: not filed again)"
        before = posted
    return f"#{before.number if before else 0} (closed as completed {MAX_AGAIN} times: not filed again)"


_BACKFILLED: weakref.WeakSet[Any] = weakref.WeakSet()  # stores this process has run :func:`backfill` on


async def backfill(store: Store, key: bytes | None) -> int:
    """Each issue the store knows only by its keyed marker (filed before the private one existed) gets its private
    note, found from the open findings the store holds (a closed-as-completed chain followed as :func:`_file`
    does); how many were noted. Idempotent. Without a key there is nothing to do: the unkeyed lookup finds them."""
    noted, after = 0, ("", 0)
    while key is not None and (page := await store.findings_page(after)):
        for kept in page:
            for t in F.load(kept.findings).values():
                noted += await _note_filed(store, kept.repo, t, key) if t.state == F.OPEN else 0
        after = (page[-1].repo, page[-1].number)
    return noted


async def backfill_once(store: Store, webhook_secret: str | None) -> None:
    """:func:`backfill` under the key of now, once per process and store: at start-up (bot/run/runtime.py, in the
    background, so a secret rotated before any merge still finds what the old key filed) and before a first filing.
    A failure is logged and tried again at the next merge (whose filing goes on: the store's trouble, if it lasts,
    fails that job visibly)."""
    if store in _BACKFILLED:
        return
    _BACKFILLED.add(store)
    try:
        noted = await backfill(store, finding_key(webhook_secret))
    except Exception:
        _BACKFILLED.discard(store)
        log.exception("tech debt: noting the issues filed before the private marker existed failed; tried again "
                      "before the next merge's filing")
        return
    log.info("tech debt: %d issue(s) filed before the private marker existed noted under it", noted)


async def _note_filed(store: Store, repo: str, t: F.Tracked, key: bytes) -> int:
    noted, before = 0, None
    for _ in range(MAX_AGAIN):
        posted = await store.find_posted(debt_marker(repo, t, before, key))
        if posted is None:
            break
        if await store.find_posted(filed_marker(repo, t, before)) is None:
            await store.remember_posted(dataclasses.replace(posted, marker=filed_marker(repo, t, before)))
            noted += 1
        before = posted.number
    return noted


async def on_pull_closed(event: events.PullClosed, deps: Deps) -> None:
    """Closed unmerged: the close is noted on its findings, which retention lets go 90 days later (the merge that
    would file them is not coming); reopened: the note is cleared, and a later merge files what is open."""
    now = time.time()
    at = None if event.reopened else min(event.closed_at or now, now)  # never a close in the future
    if await deps.store.close_findings(event.repo, event.number, at):
        log.info("%s: %s: its review's findings are %s", event.thread, "reopened" if at is None else
                 "closed without a merge", "kept for its merge" if at is None else "let go 90 days after the close")
    else:
        log.info("%s: %s, with no findings of a review kept: nothing to note", event.thread,
                 "reopened" if at is None else "closed without a merge")


async def on_pull_merged(event: events.PullMerged, gh: GitHubAPI, deps: Deps) -> None:
    kept = await deps.store.load_findings(event.repo, event.number)
    still = [t for t in F.load(kept.findings).values() if t.state == F.OPEN] if kept else []
    if not still:
        log.info("%s: merged with no finding of its review open: nothing to file", event.thread)
        if kept is not None:
            await deps.store.forget_findings(event.repo, event.number)
        return
    await backfill_once(deps.store, deps.settings.webhook_secret)  # before the first filing: issues of before
    if kept is not None and kept.sha != event.head_sha:  # a last push never reviewed (a budget wait, a failed job)
        log.error("%s: merged at head %s, but its findings are those of head %s: what the later pushes changed "
                  "was never reviewed, and the tech debt filed now may include findings they fixed", event.thread,
                  event.head_sha[:12], kept.sha[:12])
    still.sort(key=lambda t: (t.severity != "critical", t.source != F.CHECK, t.path or "", t.line or 0))
    sha = event.merge_commit_sha or event.head_sha
    filed = [await _file(gh, deps, event, t, sha) for t in still[:MAX_DEBT]]
    log.info("%s: merged with %d finding(s) open: tech debt %s", event.thread, len(still), ", ".join(filed))
    if len(still) > MAX_DEBT:  # said where operators look; the thread's verdict comment lists every one of them
        log.error("%s: merged with %d findings open; only %d were filed as tech debt (the cap per merge)",
                  event.thread, len(still), MAX_DEBT)
    # Filed (each once, by its marker): the findings are of no further use, and retention keeps open ones for good.
    await deps.store.forget_findings(event.repo, event.number)
