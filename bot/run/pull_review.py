"""The pull request's own verdict: its diff at one head commit, posted once per head SHA.

On a pull request the bot judges two things and never confuses them. The workflow's review gate judges
the bot's *own proposal* (a fix, a change set) and speaks on the thread only. This module judges *the pull
request itself*: the deterministic MUST checks on the lines it adds, then a model review of its diff; this
verdict alone becomes the PR review and the ``triage-lead / code-review`` check run, which branch protection
can require, so it must mean what a maintainer reads into it:

- a critical finding (a credential, injection, code without tests) → REQUEST_CHANGES and ``failure``,
  whatever a model said;
- a model that reviewed the diff and approved, with nothing critical → APPROVE and ``success``;
- no model (none configured, its budget spent, or it failed) → a COMMENT review and ``action_required``,
  which never satisfies a required check, with the list of what the deterministic checks covered.

Deciding is pure (:func:`decide`); :func:`post` does the writes, found again by their marker (a review by
this App's login only) and by the check run's ``external_id`` (a check run by this App's id only).
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.agents import gate
from bot.agents.gate import Finding
from bot.core import render
from bot.core.markers import marker, markers_in, with_marker
from bot.github.writes import digest, is_own, is_own_marked
from bot.store import Posted, Store

log = logging.getLogger(__name__)
CHECK = "triage-lead / code-review"
MAX_WHOLE_FILES, MAX_WHOLE_BYTES = 20, 1_000_000  # files without a diff read whole, per head
# What the deterministic checks look for, named in every verdict so nobody reads more into a pass than it holds.
COVERED = ("exposed credentials (AWS, GitHub, Slack, Stripe, Google, Anthropic and OpenAI keys; private keys)",
           "hard-coded secret-like literals", "SQL built by string formatting and passed to the database",
           "shell commands, os.system/os.popen and eval/exec on non-literal input",
           "source files changed without any test file changing")


@dataclass(frozen=True)
class Verdict:
    """What is posted for one head: the review's event, the check's conclusion, and the text of both."""

    sha: str
    event: str  # APPROVE | REQUEST_CHANGES | COMMENT
    conclusion: str  # success | failure | action_required
    title: str
    body: str


def decide(sha: str, findings: list[Finding], review: dict[str, Any] | None, *, no_model: str = "",
           unchecked: list[str] | tuple[str, ...] = ()) -> Verdict:
    """The verdict on the PR at ``sha``. ``review``: the model's review with the gate already applied, or None
    when no model reviewed it (``no_model`` says why, for the people reading). ``unchecked``: files the checks
    could not read (no patch from GitHub, or not listed at all): a pass that did not see them is no pass."""
    critical = [f for f in findings if f.severity == "critical"]
    warnings = len(findings) - len(critical)
    if critical or (review is not None and review.get("verdict") != "APPROVED"):
        event, conclusion, headline = "REQUEST_CHANGES", "failure", "changes requested"
    elif unchecked:
        event, conclusion, headline = "COMMENT", "action_required", "not every file could be checked, a person must review"
    elif review is not None:
        event, conclusion = "APPROVE", "success"
        headline = "approved by the model review; no check failed" + (f" ({warnings} warning(s) to look at)"
                                                                      if warnings else "")
    else:
        event, conclusion, headline = "COMMENT", "action_required", "no model reviewed it, a person must"
    title = f"{headline[:1].upper()}{headline[1:]} ({sha[:7]})"
    body = render.pull_verdict(sha=sha, headline=headline, findings=[{**f.item(), "severity": f.severity} for f in findings],
                               review=review, covered=COVERED, no_model=no_model if review is None else "",
                               unchecked=list(unchecked))
    return Verdict(sha=sha, event=event, conclusion=conclusion, title=title, body=body)


def unchecked(pull: dict[str, Any], files: list[dict[str, Any]], unread: list[str]) -> list[str]:
    """What the checks did not see: files without a diff that were not read whole (``unread``) and files beyond
    what GitHub lists."""
    unlisted = int(pull.get("changed_files") or 0) - len(files)
    return unread + ([f"{unlisted} more file(s) GitHub did not list"] if unlisted > 0 else [])


async def without_diff(gh: GitHubAPI, repo: str, files: list[dict[str, Any]],
                       head: str) -> tuple[list[Finding], list[str]]:
    """(credential findings, files not fully checked) for the files GitHub sent without a patch, read whole at
    the head: a binary file (one NUL byte is enough to make it one) would otherwise hide a key from every
    check. A binary file read clean counts as checked; a text file whose diff was too large to show is checked
    for credentials only, so it stays named as not checked; one that cannot be read is not checked at all."""
    findings: list[Finding] = []
    unread: list[str] = []
    todo = [f for f in files if f.get("status") != "removed" and not f.get("patch")]
    for n, f in enumerate(todo):
        path = str(f.get("filename"))
        text = await _whole(gh, repo, f, head) if n < MAX_WHOLE_FILES else None
        if text is not None:
            findings += gate.secrets_in(path, text)
        if text is None or int(f.get("changes") or 0) > 0:
            unread.append(path)
    return findings, unread


async def _whole(gh: GitHubAPI, repo: str, f: dict[str, Any], head: str) -> str | None:
    """A changed file's bytes at the head, decoded leniently (a credential in a binary file is still text)."""
    url = (f"/repos/{repo}/git/blobs/{f['sha']}" if isinstance(f.get("sha"), str) and f["sha"]
           else f"/repos/{repo}/contents/{quote(str(f.get('filename')), safe='/')}?ref={head}")
    try:
        blob = await gh.getitem(url)
    except BadRequest as exc:  # gone, too large, or not a file: not checked, and said so
        if exc.status_code in (403, 404, 409, 422):
            return None
        raise
    if (not isinstance(blob, dict) or blob.get("encoding") != "base64" or not isinstance(blob.get("content"), str)
            or int(blob.get("size") or 0) > MAX_WHOLE_BYTES):
        return None
    try:
        return base64.b64decode(blob["content"]).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def review_marker(repo: str, number: int, sha: str) -> str:
    return marker("pr-review", digest(repo, str(number), sha))


def check_marker(repo: str, sha: str) -> str:
    return marker("pr-check", digest(repo, sha))


def judged_marker(repo: str, number: int) -> str:
    """The store's note of which run judges a pull request (its ``url`` holds the run id)."""
    return marker("pr-judged", digest(repo, str(number)))


def external_id(sha: str) -> str:
    return f"pr-review:{sha}"


async def posted(store: Store, repo: str, number: int, sha: str) -> bool:
    """Whether both writes for this head are known to be done (then nothing is judged again)."""
    return (await store.find_posted(review_marker(repo, number, sha)) is not None
            and await store.find_posted(check_marker(repo, sha)) is not None)


async def post(gh: GitHubAPI, store: Store, *, repo: str, number: int, verdict: Verdict, bot_login: str | None,
               app_id: int | None, details_url: str | None = None) -> None:
    """The check run and the PR review for ``verdict.sha``, each once (found again after a crash). The check
    first: it is what branch protection reads, and GitHub refusing the review must not leave the head without it."""
    check_mark = check_marker(repo, verdict.sha)
    check: dict[str, Any] | None = None
    if (known := await store.find_posted(check_mark)) is None:
        check = await _check_exists(gh, repo, verdict.sha, app_id)
        if check is None:
            check = await gh.post(f"/repos/{repo}/check-runs", data={
                "name": CHECK, "head_sha": verdict.sha, "status": "completed", "conclusion": verdict.conclusion,
                "external_id": external_id(verdict.sha), **({"details_url": details_url} if details_url else {}),
                "output": {"title": verdict.title, "summary": render.clip(verdict.body, 60_000)}})
        await store.remember_posted(Posted(marker=check_mark, repo=repo, kind="check_run", github_id=check["id"]))
    mark = review_marker(repo, number, verdict.sha)
    if await store.find_posted(mark) is None:
        if bot_login is None:  # GET /app failing: the App's own check run names it, so its review is still found
            bot_login = await _login_of_app(gh, repo, check, known)
        review = await _own_reviews(gh, repo, number, verdict.sha, bot_login, mark)
        if review is None:
            review = await _review(gh, repo, number, verdict.sha, with_marker(verdict.body, mark), verdict.event)
        await store.remember_posted(Posted(marker=mark, repo=repo, kind="review", github_id=review["id"],
                                           number=number))


async def dismiss_stale(gh: GitHubAPI, repo: str, number: int, sha: str, bot_login: str | None) -> None:
    """The head is one already judged (a force-push back to it): no approval or change request of the App's for
    another head may stand on it."""
    await _own_reviews(gh, repo, number, sha, bot_login, None)


async def _own_reviews(gh: GitHubAPI, repo: str, number: int, sha: str, bot_login: str | None,
                       mark: str | None) -> dict[str, Any] | None:
    """This App's review for the head if a crash kept us from recording it (only a review by the App's own login,
    ending with the marker, counts: a fork author can paste the marker into theirs). On the way, the App's
    approvals and change requests of older heads are dismissed: GitHub counts a reviewer's latest such review,
    so an APPROVE of head A would otherwise still stand on head B, which nobody approved."""
    key, found = markers_in(mark)[0] if mark else None, None
    async for review in gh.getiter(f"/repos/{repo}/pulls/{number}/reviews?per_page=100"):
        if key is not None and is_own_marked(review, key, bot_login):
            found = review
        elif (is_own(review.get("user"), bot_login) and review.get("state") in ("APPROVED", "CHANGES_REQUESTED")
              and review.get("commit_id") != sha):
            await _dismiss(gh, repo, number, review, sha)
    return found


async def _dismiss(gh: GitHubAPI, repo: str, number: int, review: dict[str, Any], sha: str) -> None:
    try:
        await gh.put(f"/repos/{repo}/pulls/{number}/reviews/{review['id']}/dismissals",
                     data={"message": f"Superseded by triage-lead's review of {sha[:12]}.", "event": "DISMISS"})
    except BadRequest as exc:  # branch protection may restrict who dismisses: the new review still says it all
        if exc.status_code not in (403, 404, 422):
            raise
        log.warning("%s#%s: could not dismiss triage-lead's review %s of an older head (%s)", repo, number,
                    review.get("id"), exc.status_code)


async def _login_of_app(gh: GitHubAPI, repo: str, check: dict[str, Any] | None, known: Posted | None) -> str | None:
    """This App's bot login, from the check run it made for this head (GitHub sets a check run's ``app``; only
    the App's own token makes one, and the store holds only ids GitHub answered to that token). None if the
    check run cannot be read either: nothing then counts as the bot's own, as before."""
    if check is None and known is not None:
        try:
            check = await gh.getitem(f"/repos/{repo}/check-runs/{known.github_id}")
        except BadRequest as exc:
            log.warning("%s: the App's login is unknown and its check run %s could not be read (%s): its own review "
                        "of this head cannot be told from others'", repo, known.github_id, exc.status_code)
            return None
    slug = ((check or {}).get("app") or {}).get("slug")
    return f"{slug}[bot]" if isinstance(slug, str) and slug else None


async def _check_exists(gh: GitHubAPI, repo: str, sha: str, app_id: int | None) -> dict[str, Any] | None:
    """This App's check run for the head, if a crash kept us from recording it. Another App can name a check
    run the same and give it the same ``external_id``: only this App's id counts (none while it is unknown)."""
    if app_id is None:
        return None
    found = await gh.getitem(f"/repos/{repo}/commits/{sha}/check-runs?check_name={quote(CHECK)}&per_page=100")
    return next((c for c in found.get("check_runs", []) if c.get("external_id") == external_id(sha)
                 and (c.get("app") or {}).get("id") == app_id), None)


async def _review(gh: GitHubAPI, repo: str, number: int, sha: str, body: str, event: str) -> dict[str, Any]:
    try:
        return await gh.post(f"/repos/{repo}/pulls/{number}/reviews", data={"commit_id": sha, "body": body,
                                                                            "event": event})
    except BadRequest as exc:  # GitHub refuses APPROVE/REQUEST_CHANGES on the App's own pull request
        if exc.status_code != 422 or event == "COMMENT":
            raise
        return await gh.post(f"/repos/{repo}/pulls/{number}/reviews", data={"commit_id": sha, "body": body,
                                                                            "event": "COMMENT"})
