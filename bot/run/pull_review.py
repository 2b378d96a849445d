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

Reviews converge (issue 17, point 2): each finding has a stable id (bot/core/findings.py) and the pull request's
findings are kept in the store with the head they were judged at. Each head's review (:func:`converged`, in
bot/run/review_rounds.py) marks the earlier ones still open, fixed or gone and reports only the new ones: inline on
their lines when the diff shows them, else in the review's body. Once the pull request has had a finding, one comment
on the thread (the verdict across pushes) is edited in place, and each head's own review is short and points to it (a
submitted review cannot change); until then the review is the whole verdict, which is short, and no comment is posted.
A force-push back to a head judged before (A → B → A) judges nothing again: the findings and the thread comment go
back to the state A's code gives them (:func:`revisit`), and A's approval or change request, which B's review
dismissed, is given again in a short review (:func:`_back_at`): only one the App itself dismissed (a maintainer's
dismissal stands), and only as A's check run concludes (A is never judged again into another verdict). The texts are
bot/core/review_texts.py's.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.agents import gate
from bot.agents.gate import Finding
from bot.core import findings as F
from bot.core import render
from bot.core import review_texts as T
from bot.core.markers import marker, with_marker
from bot.github.writes import digest, upsert_comment
from bot.run.own_reviews import check_run, conclusion, dismissed_by_app, own_reviews, slug
from bot.run.own_reviews import dismissed_marker as dismissed_marker
from bot.run.review_rounds import MAX_INLINE as MAX_INLINE
from bot.run.review_rounds import converged as converged
from bot.run.review_rounds import revisit
from bot.run.review_rounds import seen as seen
from bot.store import Posted, PullFindings, Store

log = logging.getLogger(__name__)
CHECK = T.CHECK_NAME
DECIDING = ("APPROVE", "REQUEST_CHANGES")  # the review events that make the pull request's review decision
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
    body: str  # the whole verdict at this head: the check run's text, and folded in the thread comment
    note: str = ""  # the review's text once the PR has findings; "" for a verdict kept before reviews converged
    comments: list[dict[str, Any]] = field(default_factory=list)  # new findings on lines of the diff
    thread: str = ""  # the thread comment: the pull request's findings across pushes, edited in place
    findings: dict[str, Any] = field(default_factory=dict)  # every finding after this head, stored when posted
    # For a return to this head (:func:`revisit`): the files the checks could not read, and True if GitHub did not
    # list them all (None, not False: a stored record leaves out what is empty). ``read_known``: True on every verdict
    # that records them; a verdict stored before they were kept lacks it, and then what was read is unknown.
    unread: list[str] | None = None
    unlisted: bool | None = None
    read_known: bool = False

    # Left out of a stored run while empty, so a verdict without findings is stored as before reviews converged.
    OPTIONAL_KEYS: ClassVar[tuple[str, ...]] = ("note", "comments", "thread", "findings", "unread", "unlisted",
                                                "read_known")


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


def thread_marker(repo: str, number: int) -> str:
    """The pull request's one verdict comment on its thread, edited at each head."""
    return marker("pr-verdict", digest(repo, str(number)))


async def without_diff(gh: GitHubAPI, repo: str, files: list[dict[str, Any]],
                       head: str) -> tuple[list[Finding], list[str]]:
    """(credential findings, files not fully checked) for the files GitHub sent without a patch, read whole at
    the head: a binary file (one NUL byte is enough to make it one) would otherwise hide a key from every
    check. A binary file read clean counts as checked; a text file whose diff was too large to show is checked
    for credentials only, so it stays named as not checked; one that cannot be read is not checked at all."""
    findings: list[Finding] = []
    unread: list[str] = []
    todo = [f for f in files if F.present(f) and not f.get("patch")]
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


def again_marker(repo: str, number: int, sha: str) -> str:
    """A head's verdict given again when the pull request is back at it (:func:`_back_at`)."""
    return marker("pr-review-again", digest(repo, str(number), sha))


def check_marker(repo: str, sha: str) -> str:
    return marker("pr-check", digest(repo, sha))


def judged_marker(repo: str, number: int) -> str:
    """The store's note of which run judges a pull request (its ``url`` holds the run id)."""
    return marker("pr-judged", digest(repo, str(number)))


def external_id(sha: str) -> str:
    return f"pr-review:{sha}"


async def posted(store: Store, repo: str, number: int, sha: str) -> bool:
    """Whether both writes for this head are known to be done and its findings are the pull request's (then
    nothing is judged again). A head judged before whose findings are not the last stored (a force-push back to it,
    A → B → A) is not, even with no finding: the thread comment must follow its code again, and its approval or
    change request, dismissed when the later head was judged, be given again (:func:`post`, :func:`_back_at`)."""
    if (await store.find_posted(review_marker(repo, number, sha)) is None
            or await store.find_posted(check_marker(repo, sha)) is None):
        return False
    kept = await store.load_findings(repo, number)
    return kept is None or kept.sha == sha


async def post(gh: GitHubAPI, store: Store, *, repo: str, number: int, verdict: Verdict, bot_login: str | None,
               app_id: int | None, details_url: str | None = None) -> None:
    """The check run and the PR review for ``verdict.sha``, each once (found again after a crash). The check
    first: it is what branch protection reads, and GitHub refusing the review must not leave the head without it."""
    check_mark = check_marker(repo, verdict.sha)
    check: dict[str, Any] | None = None
    if (known := await store.find_posted(check_mark)) is None:
        check = await own_check(gh, repo, verdict.sha, app_id)
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
        body = verdict.body
        if verdict.note:  # the findings across pushes: stored, then the review
            await store.save_findings(PullFindings(repo=repo, number=number, sha=verdict.sha, findings=verdict.findings))
        if verdict.note and verdict.findings:  # once the PR has had a finding: the thread comment, and a short review
            thread = await upsert_comment(gh, store, repo=repo, number=number, mark=thread_marker(repo, number),
                                          body=verdict.thread, bot_login=bot_login)
            body = f"{verdict.note}\n\nEvery finding of this pull request, in its state across pushes: " + (
                thread.url or "triage-lead's verdict comment on this pull request") + "."
        review = (await own_reviews(gh, store, repo, number, verdict.sha, bot_login, mark)).found
        if review is None:
            review = await _review(gh, repo, number, verdict.sha, (body, mark), verdict.event, verdict.comments)
        await store.remember_posted(Posted(marker=mark, repo=repo, kind="review", github_id=review["id"],
                                           number=number))
        return
    # The head's review was posted: the head is back after a later one was judged.
    check = check if check is not None else await check_run(gh, repo, known)
    await _back_at(gh, store, repo, number, verdict, bot_login or slug(check), conclusion(check))


async def reviewed_before(store: Store, repo: str, number: int, sha: str) -> bool:
    """Whether both writes for this head were done once (its check run and its review): a head judged before."""
    return (await store.find_posted(review_marker(repo, number, sha)) is not None
            and await store.find_posted(check_marker(repo, sha)) is not None)


async def stale_read(store: Store, repo: str, number: int, read: str, delivered: str | None) -> bool:
    """Whether GitHub's answer names a head judged before (``read``) while the push delivered names another
    (``delivered``): a lagging replica's answer (taken for a return, it would give the old head's verdict again while
    the real head goes unjudged), or a later push back to it (whose own delivery says so). Either way this delivery
    is not a return."""
    return bool(delivered) and read != delivered and await reviewed_before(store, repo, number, read)


class HeadLags(TimeoutError):
    """GitHub's pull read twice names a head judged before, not the head the run was moved to: a lagging replica (or
    a push back, whose own delivery moves the run first). Transient: the job is retried, and fails visibly after."""


async def pull_at_run_head(get_pull: Callable[[], Awaitable[dict[str, Any]]], store: Store, repo: str, number: int,
                           run_head: str | None) -> dict[str, Any]:
    """The pull request as GitHub has it, read once more if it names a head judged before while the run was moved to
    another: taken for a return, that head's verdict would be given again while the pushed head goes unjudged."""
    pull = await get_pull()
    if await stale_read(store, repo, number, str(pull["head"]["sha"]), run_head):
        pull = await get_pull()
        if await stale_read(store, repo, number, str(pull["head"]["sha"]), run_head):
            raise HeadLags(f"GitHub names head {str(pull['head']['sha'])[:7]}, judged before, not the run's "
                           f"{(run_head or '')[:7]}")
    return pull


async def back_unkept(gh: GitHubAPI, store: Store, repo: str, number: int, sha: str, bot_login: str | None) -> None:
    """Back at a head judged before whose verdict the run no longer keeps (it keeps the last few): judged again, a
    model could say otherwise (an author re-rolls it until it approves), so it is not. Its check run is its verdict:
    that conclusion, and only it, is given again (:func:`_back_at`); the findings and the thread comment stay as the
    last judged head left them (what this head's code gives them was in the verdict no longer kept)."""
    check = await check_run(gh, repo, await store.find_posted(check_marker(repo, sha)))
    shown = conclusion(check)
    event = {"success": "APPROVE", "failure": "REQUEST_CHANGES"}.get(shown or "", "COMMENT")
    # Unreadable, nothing is given again and nothing on the thread moves: said where operators look.
    log.log(logging.WARNING if shown else logging.ERROR,
            "%s#%s: back at %s, judged before; its verdict is no longer kept and it is not judged again: its check "
            "run's conclusion (%s) is given again, the thread comment stays as the last head judged left it",
            repo, number, sha[:12], shown or "unreadable")
    title = {"APPROVE": "Approved", "REQUEST_CHANGES": "Changes requested"}.get(event, "No verdict") + f" ({sha[:7]})"
    await _back_at(gh, store, repo, number, Verdict(sha=sha, event=event, conclusion=shown or "", title=title, body=""),
                   bot_login or slug(check), shown)


async def _back_at(gh: GitHubAPI, store: Store, repo: str, number: int, verdict: Verdict, bot_login: str | None,
                   shown: str | None) -> None:
    """A head judged before is the head again (a force-push back to it, A → B → A). The App's approval or change
    request of the later head is dismissed; the thread comment and the findings take the state this head's code gives
    them (:func:`revisit`); and this head's own approval or change request, dismissed when the later head was judged,
    is given again in a short review pointing to the thread comment (GitHub cannot undo a dismissal, and a submitted
    review cannot change): the pull request's review decision is this head's verdict, as its check run says. Nothing
    is judged again. The record that the head is the pull request's comes last: a crash before it does the rest
    again on the retry, each found again (the comment by its marker, the review given again as standing).
    Given again only if the App itself dismissed it (a maintainer's dismissal stands), and only a verdict its check
    run shows (``shown``, its conclusion): a verdict judged again since may say otherwise, and is not this head's."""
    own = await own_reviews(gh, store, repo, number, verdict.sha, bot_login, review_marker(repo, number, verdict.sha))
    if shown != verdict.conclusion:
        log.error("%s#%s: back at %s, whose check run says %s but the verdict in hand %s: neither given again nor "
                  "the thread comment changed (the verdict was judged again)", repo, number, verdict.sha[:12],
                  shown or "nothing readable", verdict.conclusion)
        return
    back, url = await revisit(gh, store, repo, number, verdict), None
    if back is not None:
        url = (await upsert_comment(gh, store, repo=repo, number=number, mark=thread_marker(repo, number),
                                    body=back.thread, bot_login=bot_login)).url
    # Only a verdict that was an approval or change request, and was dismissed: a COMMENT review (the App's own pull
    # request, GitHub refusing the event) still stands as it was, and given again would only repeat it.
    if (own.found or {}).get("state") == "DISMISSED" and not own.stands and verdict.event in DECIDING:
        body = T.back_again(verdict.title, verdict.sha, url)
        if await dismissed_by_app(store, repo, number, own.dismissed):
            await _review(gh, repo, number, verdict.sha, (body, again_marker(repo, number, verdict.sha)), verdict.event,
                          [])
        else:
            log.warning("%s#%s: back at %s, whose %s was dismissed by someone else than triage-lead: not given again",
                        repo, number, verdict.sha[:12], verdict.event)
    kept = back.findings if back is not None else None
    if kept is None and (before := await store.load_findings(repo, number)) is not None and not before.findings:
        kept = {}  # a pull request without findings: the record of which head it is at is all there is to move
    if kept is not None:
        await store.save_findings(PullFindings(repo=repo, number=number, sha=verdict.sha, findings=kept))


async def dismiss_stale(gh: GitHubAPI, repo: str, number: int, sha: str, bot_login: str | None,
                        store: Store | None = None) -> None:
    """The head is one already judged (a force-push back to it): no approval or change request of the App's for
    another head may stand on it. (Without ``store`` a dismissal is not recorded: that head's verdict is then never
    given again, as if a maintainer had dismissed it: fail-closed.)"""
    await own_reviews(gh, store, repo, number, sha, bot_login, None)


async def _login_of_app(gh: GitHubAPI, repo: str, check: dict[str, Any] | None, known: Posted | None) -> str | None:
    """This App's bot login, from the check run it made for this head (GitHub sets a check run's ``app``; only
    the App's own token makes one, and the store holds only ids GitHub answered to that token). None if the
    check run cannot be read either: nothing then counts as the bot's own, as before."""
    return slug(check if check is not None else await check_run(gh, repo, known))


async def own_check(gh: GitHubAPI, repo: str, sha: str, app_id: int | None, name: str = CHECK,
                    ext: str | None = None) -> dict[str, Any] | None:
    """This App's check run ``name`` for the head, if a crash kept us from recording it. Another App can name a check
    run the same and give it the same ``external_id``: only this App's id counts (none while it is unknown)."""
    if app_id is None:
        return None
    found = await gh.getitem(f"/repos/{repo}/commits/{sha}/check-runs?check_name={quote(name)}&per_page=100")
    return next((c for c in found.get("check_runs", []) if c.get("external_id") == (ext or external_id(sha))
                 and (c.get("app") or {}).get("id") == app_id), None)


async def _review(gh: GitHubAPI, repo: str, number: int, sha: str, text: tuple[str, str], event: str,
                  comments: list[dict[str, Any]]) -> dict[str, Any]:
    """The review (``text``: its body and marker). 422 refuses a line comment off the diff (moved under it) and an
    approval or change request on the App's own pull request: then the line comments go in the body, same event (a
    refused comment must not make a change request a mere comment), then a COMMENT review (the check keeps it)."""
    body, mark = text
    if comments:
        body = T.with_line_comments(body, comments)
    data = {"commit_id": sha, "body": with_marker(body, mark), "event": event}
    tries = [data | {"body": with_marker(text[0], mark), "comments": comments}] * bool(comments) + [data] + (
        [data | {"event": "COMMENT"}] if event != "COMMENT" else [])
    for attempt in tries[:-1]:
        try:
            return await gh.post(f"/repos/{repo}/pulls/{number}/reviews", data=attempt)
        except BadRequest as exc:
            if exc.status_code != 422:
                raise
            log.warning("%s#%s: GitHub refused the review at %s (%s%s): tried again", repo, number, sha[:7],
                        attempt["event"], " with line comments" if "comments" in attempt else "")
    return await gh.post(f"/repos/{repo}/pulls/{number}/reviews", data=tries[-1])
