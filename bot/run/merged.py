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
created, the marker it will carry is noted under the private marker (``claim_filing``), and a retry looks for an
issue carrying the marker noted (in the store, or on GitHub among the issues the bot created); none found, it files
under the key of now, never under the one noted: that key may be retired because it leaked. The note is a claim
too: two merges of one finding at once (separate jobs) file one issue; the other job waits a little, then fails to
be retried.

Issues filed before the private marker existed are in the store under their keyed marker only, and an HMAC cannot
be turned back into its finding: :func:`backfill` finds them from the findings the store still holds (a merged pull
request's were kept then), under the key of now, once per install (recorded in the store) before its first filing.
What it cannot reach: an issue whose pull request's findings are gone, or whose key was rotated away before this ran.

``pull_request.closed`` with ``merged: true`` files here; closed unmerged (its findings never reached the default
branch) and reopened only note the close for retention (:func:`on_pull_closed`). The findings are the store's
(bot/run/pull_review.py keeps them per head); a pull request the bot never reviewed has none, and nothing is filed.
A merge is noted as a close, as an unmerged one is: a review run after it keeps what it finds for 90 days only.
"""

from __future__ import annotations

import asyncio
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
from bot.github.writes import create_issue_once, digest, find_issue
from bot.run.runs import Deps
from bot.store import Posted, Store

log = logging.getLogger(__name__)

MAX_DEBT = 10  # issues filed per merge: a runaway review cannot flood the tracker
LABELS = ["tech-debt"]
MAX_AGAIN = 5  # closed-as-completed issues followed for one finding before it is filed again
UNSTATED = "no reason given"  # a closed issue's state_reason when GitHub has none
KEY_LABEL = b"triage-lead finding ids v1"
# Two merges of the same finding at once: the job whose claim won files; the other looks again CLAIM_TRIES times,
# CLAIM_POLL s apart, then fails to be retried. A claim whose job died (a crash, not a failure: that lets it go)
# is taken over after CLAIM_LEASE s. A live job's never is, however long its writes wait (the write pacer's wait
# has no bound: an hour's writes used up, and others queued before it): it stamps its claim anew every third of
# the lease while it holds it, so the claim lapses only if three renewals in a row fail.
CLAIM_TRIES = 20
CLAIM_POLL = 0.5
CLAIM_LEASE = 900.0
CLOCK_SKEW = 300.0  # how far GitHub's clock may run ahead of ours (a close or reopen dated later is undated)


def finding_key(webhook_secret: str | None) -> bytes | None:
    """The key of the public markers made from finding ids: one the App holds and no reader of an issue does. None
    without a webhook secret (then the markers are made as before keys were)."""
    return hmac.new(webhook_secret.encode(), KEY_LABEL, hashlib.sha256).digest() if webhook_secret else None


def debt_marker(repo: str, t: F.Tracked, after: int | None = None, key: bytes | None = None, *,
                unfolded: bool = False) -> str:
    """A finding's tech-debt issue: by repository and finding id, whichever pull request left it open. An id
    leaves a finding's text out; where it names no line of code (no test changed, a model finding without a place
    or off the diff) it is the same for unrelated findings of two pull requests, so there the text is part of
    the key: one pull request's debt must never pass for filed by another's. A model's text is taken as its id
    takes it (:func:`F.gist`: case and punctuation left out), or the next review's rewording of the same finding
    would be filed again at every merge; a check's text is the bot's own, word for word, and kept whole (its
    numbers may be all that tells two apart). ``key``: :func:`finding_key`'s (None: the unkeyed marker issues were
    filed under before); ``unfolded``: the marker of before a model's text was folded (:func:`_known` finds them)."""
    anchored = t.source == F.CHECK and t.path is not None and t.line is not None
    fold = t.source == F.MODEL and not unfolded
    parts = (repo, t.id) if anchored else (repo, t.id, F.gist(t.text) if fold else F.normalise(t.text))
    mark = (hmac.new(key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()[:16] if key is not None
            else digest(*parts))
    return marker("finding-debt", mark if after is None else digest(mark, "after", str(after)))


def filed_marker(repo: str, t: F.Tracked, after: int | None = None, *, unfolded: bool = False) -> str:
    """The store's own note of a finding's tech-debt issue: never posted, so not keyed, and the same whatever the
    webhook secret is (a keyed marker changes with it)."""
    return marker("finding-debt-filed", digest(markers_in(debt_marker(repo, t, after, unfolded=unfolded))[0]))


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


class FilingInProgress(TimeoutError):
    """Another job is filing this finding's issue right now (two merges with the same finding at once): this job
    fails, and is retried (a timeout is transient), then finds the issue that job filed."""


async def _known(store: Store, repo: str, t: F.Tracked, after: int | None, key: bytes | None) -> tuple[Posted | None,
                                                                                                      bool]:
    """One link of a finding's chain as the store knows it, and whether it was noted privately just now: by the
    private marker (it outlives a rotated webhook secret), else the keyed marker of the key of now, else the unkeyed
    one of before keys, then each of them as it was before a model's text was folded (``unfolded``: issues filed
    then); one found by any other marker is noted under the private one, so a rotation loses it not. The one walk
    of :func:`_file` and :func:`backfill`."""
    own = filed_marker(repo, t, after)
    if (posted := await store.find_posted(own)) is not None:
        return posted, False
    for other in dict.fromkeys([debt_marker(repo, t, after, key), debt_marker(repo, t, after),
                                filed_marker(repo, t, after, unfolded=True),
                                debt_marker(repo, t, after, key, unfolded=True),
                                debt_marker(repo, t, after, unfolded=True)]):
        if other != own and (posted := await store.find_posted(other)) is not None:
            await store.remember_posted(dataclasses.replace(posted, marker=own))
            return posted, True
    return None, False


async def _filed_once(gh: GitHubAPI, deps: Deps, repo: str, mark: tuple[str, str], text: tuple[str, str]) -> tuple[
        Posted, bool]:
    """Under the claim of ``mark`` = (private marker, public marker of the key of now): the marker an earlier
    attempt noted is only looked for (it may be a retired key's: a leaked one, so never filed under again); none
    carrying it, the public marker of now is noted, then filed under (create_issue_once finds one already there)."""
    own, public = mark
    noted = await deps.store.claim_filing(own, public, CLAIM_LEASE)
    if noted is None:
        raise FilingInProgress(f"{repo}: another job is filing the same tech debt; retried, it finds that issue")
    renewing = asyncio.create_task(_renew(deps.store, repo, own), name="tech-debt claim renewal")
    try:
        if noted != public:
            if (found := await find_issue(gh, deps.store, repo, noted, deps.bot_login)) is not None:
                await deps.store.remember_posted(dataclasses.replace(found, marker=own))
                return found, False
            await deps.store.note_filing(own, public)  # before the issue: a crash after it finds it by this marker
        posted, created = await create_issue_once(gh, deps.store, repo=repo, mark=public, title=text[0], body=text[1],
                                                  labels=LABELS, bot_login=deps.bot_login)
        await deps.store.remember_posted(dataclasses.replace(posted, marker=own))
        return posted, created
    finally:  # filed and noted, or failed: a retry need not wait for the claim's lease
        renewing.cancel()  # released first: a job cancelled while it waits for the renewal to end still lets go
        try:
            await asyncio.shield(deps.store.release_filing(own))  # done even when the job is cancelled meanwhile
        except Exception as exc:  # its lease runs out instead; the job's own outcome stands
            log.warning("%s: the claim of a tech-debt filing could not be let go (%s); a retry waits %.0f s for it",
                        repo, exc, CLAIM_LEASE)
        await asyncio.wait([renewing])  # (a renewal after the release would not take the claim back anyway)


async def _renew(store: Store, repo: str, own: str) -> None:
    """Keeps a claim held alive while its job files, until cancelled (see CLAIM_LEASE)."""
    while True:
        await asyncio.sleep(CLAIM_LEASE / 3)
        try:
            await store.renew_filing(own)
        except Exception as exc:  # the next one may pass; three in a row failed, another job may file too
            log.warning("%s: the claim of a tech-debt filing could not be renewed (%s)", repo, exc)


async def _link(gh: GitHubAPI, deps: Deps, event: events.PullMerged, t: F.Tracked, after: int | None,
                text: tuple[str, str]) -> tuple[Posted, bool]:
    """The issue of one link of the finding's chain, filed unless the store or GitHub knows it; (issue, created?).
    Another job filing it right now (the claim is its): waited for a little, then this job fails to be retried."""
    key = finding_key(deps.settings.webhook_secret)
    mark = (filed_marker(event.repo, t, after), debt_marker(event.repo, t, after, key))
    for attempt in range(CLAIM_TRIES):
        posted, _ = await _known(deps.store, event.repo, t, after, key)
        if posted is not None:
            return posted, False
        try:
            return await _filed_once(gh, deps, event.repo, mark, text)
        except FilingInProgress:
            if attempt == CLAIM_TRIES - 1:
                raise
        await asyncio.sleep(CLAIM_POLL)
    raise AssertionError("unreachable")


async def _file(gh: GitHubAPI, deps: Deps, event: events.PullMerged, t: F.Tracked, sha: str) -> str:
    """The finding's tech-debt issue, filed unless one is open or a person closed it as settled; what became of it."""
    before: Posted | None = None
    for _ in range(MAX_AGAIN):
        text = review_texts.debt_issue(t, event.number, sha, closed=before.number if before else None)
        posted, created = await _link(gh, deps, event, t, before.number if before else None, text)
        if created:
            return f"#{posted.number}" + (f" (again: #{before.number} was closed as completed)" if before else "")
        how = await _closed_how(gh, event.repo, int(posted.number or 0))
        if how is None:
            return f"#{posted.number} (filed before)"
        if how != "completed":
            return f"#{posted.number} (closed {'with' if how == UNSTATED else 'as'} {how}: not filed again)"
        before = posted
    return f"#{before.number if before else 0} (closed as completed {MAX_AGAIN} times: not filed again)"


# One pass per install (its record in the store): it notes the issues the key of the time filed before the private
# marker existed. After a rotation the pass under the new key could not find the old key's anyway (an HMAC cannot
# be turned back), so once per install, not once per key, is all it can do.
BACKFILL_DONE = "tech-debt private markers backfilled v1"
_BACKFILLS: weakref.WeakKeyDictionary[Any, asyncio.Task[None]] = weakref.WeakKeyDictionary()  # per store


async def backfill(store: Store, key: bytes | None) -> int:
    """Each issue the store knows only by its keyed or unkeyed marker (filed before the private one existed) gets its
    private note, found from the open findings the store holds (a closed-as-completed chain followed as :func:`_file`
    does); how many were noted. Idempotent. Without a key there is nothing to do: the unkeyed lookup finds them."""
    noted, after = 0, ("", 0)
    while key is not None and (page := await store.findings_page(after)):
        for kept in page:
            for t in F.load(kept.findings).values():
                noted += await _note_filed(store, kept.repo, t, key) if t.state == F.OPEN else 0
        after = (page[-1].repo, page[-1].number)
    return noted


def start_backfill(store: Store, webhook_secret: str | None) -> asyncio.Task[None] | None:
    """The pass of :func:`backfill_once` under way for ``store`` in this process, started unless one is (or one
    finished well); None without a key. bot/run/runtime.py starts it at start-up and cancels it at shutdown."""
    if finding_key(webhook_secret) is None:
        return None
    running = _BACKFILLS.get(store)
    if running is None or running.cancelled():  # (one that failed took itself out)
        running = _BACKFILLS[store] = asyncio.create_task(_backfill_pass(store, webhook_secret),
                                                          name="tech-debt backfill")
    return running


async def backfill_once(store: Store, webhook_secret: str | None) -> None:
    """:func:`backfill` under the key of now, once per install: at start-up (bot/run/runtime.py, in the background, so
    a secret rotated before any merge still finds what the old key filed) and before a first filing, which waits for
    the pass under way (one per store and process). A failure is logged and tried again at the next merge (whose
    filing goes on: the store's trouble, if it lasts, fails that job visibly)."""
    running = start_backfill(store, webhook_secret)
    if running is not None and not running.done():
        await asyncio.shield(running)  # a merge job cancelled must not cancel the pass others wait for


async def _backfill_pass(store: Store, webhook_secret: str | None) -> None:
    try:
        if await store.is_done(BACKFILL_DONE):
            return
        noted = await backfill(store, finding_key(webhook_secret))
        await store.note_done(BACKFILL_DONE)
    except Exception:
        if _BACKFILLS.get(store) is asyncio.current_task():  # the next merge starts another
            del _BACKFILLS[store]
        log.exception("tech debt: noting the issues filed before the private marker existed failed; tried again "
                      "before the next merge's filing")
        return
    log.info("tech debt: %d issue(s) filed before the private marker existed noted under it", noted)


async def _note_filed(store: Store, repo: str, t: F.Tracked, key: bytes) -> int:
    noted, before = 0, None
    for _ in range(MAX_AGAIN):
        posted, new = await _known(store, repo, t, before, key)
        if posted is None:
            break
        noted, before = noted + new, posted.number
    return noted


def _when_made(updated_at: float | None, now: float) -> float | None:
    """GitHub's time of a close or reopen, for ordering them; None (unknown) if later than GitHub's clock can be.
    Such a time says nothing of the order (a clock gone wrong: year 9999), and taken as it is, or cut down to
    ``now + CLOCK_SKEW``, a close would outrank a real reopen made after it (at once, or while the close's job
    waited in the queue), and the open pull request's findings would be let go. Unknown, the store applies it as
    it applies any undated change: a reopen always, a close only over no dated one (bot/store/base.py)."""
    return None if updated_at is None or updated_at > now + CLOCK_SKEW else updated_at


async def on_pull_closed(event: events.PullClosed, deps: Deps) -> None:
    """Closed unmerged: the close is noted on its findings, which retention lets go 90 days later (the merge that
    would file them is not coming); reopened: the note is cleared, and a later merge files what is open. One
    delivered after a later close or reopen was applied (a redelivery, a retried job) changes nothing."""
    now = time.time()
    at = None if event.reopened else min(event.closed_at or now, now)  # never a close in the future
    what = "reopened" if at is None else "closed without a merge"
    stamp = _when_made(event.updated_at, now)
    if not await deps.store.close_findings(event.repo, event.number, at, at=stamp, sha=event.head_sha):
        log.info("%s: %s (GitHub's updated_at %s), but a later close or reopen was applied already: left as it is",
                 event.thread, what, event.updated_at)
        return
    log.info("%s: %s: its review's findings, if any, are %s", event.thread, what,
             "kept for its merge" if at is None else "let go 90 days after the close")


async def on_pull_merged(event: events.PullMerged, gh: GitHubAPI, deps: Deps) -> None:
    kept = await deps.store.load_findings(event.repo, event.number)
    still = [t for t in F.load(kept.findings).values() if t.state == F.OPEN] if kept else []
    # Findings of another head: a last push never reviewed (a budget wait, a failed job), or a return to a head
    # whose verdict was no longer kept (its findings stay as the later head left them): said, even with none open.
    if kept is not None and kept.findings and kept.sha != event.head_sha:
        log.error("%s: merged at head %s, but its findings are those of head %s: the merged code was not what was "
                  "reviewed last, so the tech debt filed now may miss its findings or include ones fixed", event.thread,
                  event.head_sha[:12], kept.sha[:12])
    if not still:
        log.info("%s: merged with no finding of its review open: nothing to file", event.thread)
        await _done_with(deps.store, event)
        return
    await backfill_once(deps.store, deps.settings.webhook_secret)  # before the first filing: issues of before
    still.sort(key=lambda t: (t.severity != "critical", t.source != F.CHECK, t.path or "", t.line or 0))
    sha = event.merge_commit_sha or event.head_sha
    filed = [await _file(gh, deps, event, t, sha) for t in still[:MAX_DEBT]]
    log.info("%s: merged with %d finding(s) open: tech debt %s", event.thread, len(still), ", ".join(filed))
    if len(still) > MAX_DEBT:  # said where operators look; the thread's verdict comment lists every one of them
        log.error("%s: merged with %d findings open; only %d were filed as tech debt (the cap per merge)",
                  event.thread, len(still), MAX_DEBT)
    await _done_with(deps.store, event)


async def _done_with(store: Store, event: events.PullMerged) -> None:
    """Filed (each once, by its marker): the findings are let go (retention would keep open ones for good), and the
    merge is noted as a close: a review that runs after it (a redelivered or retried push; no merge is coming to
    file what it finds) saves into a closed row, which retention deletes 90 days on. Ranked above any close or
    reopen of before the merge (by GitHub's clock, all of them), which a redelivery may bring later."""
    now = time.time()
    await store.forget_findings(event.repo, event.number)
    await store.close_findings(event.repo, event.number, now, at=now + CLOCK_SKEW, sha=event.head_sha)
