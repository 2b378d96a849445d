"""The App's own reviews and check runs on a pull request, as bot/run/pull_review.py reads them back: which review
of the App's stands or was dismissed (and whether by the App: the store remembers each review it dismissed, as
GitHub's review does not say who did), and what the App's check run of a head concluded."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.core.markers import marker, markers_in
from bot.github.writes import digest, is_own, is_own_marked
from bot.store import Posted, Store

log = logging.getLogger(__name__)


def dismissed_marker(repo: str, number: int, review_id: Any) -> str:
    """The store's note that the App itself dismissed one of its reviews (GitHub's review does not say who did):
    a review of a head a maintainer dismissed is never given again over their head (pull_review's ``_back_at``)."""
    return marker("pr-dismissed", digest(repo, str(number), str(review_id)))


@dataclass(frozen=True)
class Own:
    """The App's reviews on a pull request as :func:`own_reviews` found them."""

    found: dict[str, Any] | None  # the review carrying the marker asked for
    stands: bool  # an approval or change request of the App's stands on the head
    dismissed: tuple[Any, ...]  # the ids of the App's reviews of the head shown as dismissed


async def own_reviews(gh: GitHubAPI, store: Store | None, repo: str, number: int, sha: str, bot_login: str | None,
                       mark: str | None) -> Own:
    """The App's review carrying ``mark`` if any: the review for the head if a crash kept us from recording it (only
    a review by the App's own login, ending with the marker, counts: a fork author can paste the marker into
    theirs). On the way, the App's approvals and change requests of older heads are dismissed: GitHub counts a
    reviewer's latest such review, so an APPROVE of head A would otherwise still stand on head B, which nobody
    approved."""
    key, found, stands, dismissed = markers_in(mark)[0] if mark else None, None, False, []
    async for review in gh.getiter(f"/repos/{repo}/pulls/{number}/reviews?per_page=100"):
        own = is_own(review.get("user"), bot_login)
        deciding = own and review.get("state") in ("APPROVED", "CHANGES_REQUESTED")
        stands = stands or (deciding and review.get("commit_id") == sha)
        if own and review.get("commit_id") == sha and review.get("state") == "DISMISSED":
            dismissed.append(review.get("id"))
        if key is not None and is_own_marked(review, key, bot_login):
            found = review
        elif deciding and review.get("commit_id") != sha:
            await dismiss(gh, store, repo, number, review, sha)
    return Own(found, stands, tuple(dismissed))


async def dismiss(gh: GitHubAPI, store: Store | None, repo: str, number: int, review: dict[str, Any],
                   sha: str) -> None:
    """One of the App's reviews dismissed, and remembered as dismissed by the App (after GitHub said so: a crash
    between the two leaves it counted as a maintainer's, whose verdict is never given again: fail-closed)."""
    try:
        await gh.put(f"/repos/{repo}/pulls/{number}/reviews/{review['id']}/dismissals",
                     data={"message": f"Superseded by triage-lead's review of {sha[:12]}.", "event": "DISMISS"})
    except BadRequest as exc:  # branch protection may restrict who dismisses: the new review still says it all
        if exc.status_code not in (403, 404, 422):
            raise
        log.warning("%s#%s: could not dismiss triage-lead's review %s of an older head (%s)", repo, number,
                    review.get("id"), exc.status_code)
        return
    if store is not None:
        await store.remember_posted(Posted(marker=dismissed_marker(repo, number, review["id"]), repo=repo,
                                           kind="dismissal", github_id=int(review["id"]), number=number))


async def dismissed_by_app(store: Store, repo: str, number: int, ids: tuple[Any, ...]) -> bool:
    """Whether each of these dismissed reviews was dismissed by the App itself (none at all: nothing to say so)."""
    for rid in ids:
        if await store.find_posted(dismissed_marker(repo, number, rid)) is None:
            return False
    return bool(ids)


async def check_run(gh: GitHubAPI, repo: str, known: Posted | None) -> dict[str, Any] | None:
    """The App's check run recorded as ``known``; None when there is none or GitHub cannot show it (said in the log)."""
    if known is None:
        return None
    try:
        found = await gh.getitem(f"/repos/{repo}/check-runs/{known.github_id}")
    except BadRequest as exc:
        log.warning("%s: the App's check run %s could not be read (%s): its conclusion and the App's login are "
                    "unknown", repo, known.github_id, exc.status_code)
        return None
    return found if isinstance(found, dict) else None


def slug(check: dict[str, Any] | None) -> str | None:
    slug = ((check or {}).get("app") or {}).get("slug")
    return f"{slug}[bot]" if isinstance(slug, str) and slug else None


def conclusion(check: dict[str, Any] | None) -> str | None:
    found = (check or {}).get("conclusion")
    return found if isinstance(found, str) else None
