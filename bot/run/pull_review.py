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
findings are kept in the store with the head they were judged at. Each head's review (:func:`converged`) marks the
earlier ones still open, fixed or gone and reports only the new ones: inline on their lines when the diff shows
them, else in the review's body. Once the pull request has had a finding, one comment on the thread (the verdict
across pushes) is edited in place, and each head's own review is short and points to it (a submitted review cannot
change); until then the review is the whole verdict, which is short, and no comment is posted. A force-push back to
a head judged before (A → B → A) posts no second review of it, but puts the findings and the thread comment back in
the state A's code gives them (:func:`revisit`). The texts are bot/core/review_texts.py's.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar
from urllib.parse import quote

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.agents import gate
from bot.agents.gate import Finding
from bot.core import findings as F
from bot.core import render
from bot.core import review_texts as T
from bot.core.markers import marker, markers_in, with_marker
from bot.github.writes import digest, is_own, is_own_marked, upsert_comment
from bot.run.compare import compare
from bot.store import Posted, PullFindings, Store

log = logging.getLogger(__name__)
CHECK = T.CHECK_NAME
MAX_WHOLE_FILES, MAX_WHOLE_BYTES = 20, 1_000_000  # files without a diff read whole, per head
MAX_INLINE = 20  # review comments on lines per review (the rest in its body)
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


def seen(checks: list[Finding], review: dict[str, Any] | None) -> list[F.Seen]:
    """This head's findings: the deterministic checks', then the model's critical findings and warnings (those the
    gate merged into its review are the checks' own, not the model's)."""
    out = [F.Seen(F.CHECK, f.rule or f.criterion, f.severity, f.text, f.path, f.line, f.anchor) for f in checks]
    texts, spots = {f.item()["text"] for f in checks}, {(f.path, f.line) for f in checks if f.path}
    for key, severity in (("critical", "critical"), ("warnings", "warning")):
        for i in (review or {}).get(key) or []:
            if not isinstance(i, dict) or not isinstance(i.get("text"), str) or i["text"] in texts:
                continue
            path = i["path"] if isinstance(i.get("path"), str) and i["path"] else None
            line = i["line"] if type(i.get("line")) is int and i["line"] > 0 else None
            if (path, line) not in spots:
                out.append(F.Seen(F.MODEL, f"model:{severity}", severity, i["text"], path, line))
    return out


async def converged(gh: GitHubAPI, store: Store, repo: str, number: int, verdict: Verdict, files: list[dict[str, Any]],
                    checks: list[Finding], review: dict[str, Any] | None, unread: list[str], listed_all: bool) -> Verdict:
    """``verdict`` with the pull request's findings carried across from the last reviewed head: what the files
    changed since that head (GitHub's compare) decides whether a model finding nobody repeated is fixed, and a file
    renamed (since that head, or from the base as the pull request's files list it) takes its findings along."""
    verdict = replace(verdict, unread=list(unread) or None, unlisted=None if listed_all else True, read_known=True)
    before = await store.load_findings(repo, number)
    earlier = F.load(before.findings) if before else {}
    changed, moved = (await _changed_between(gh, repo, before.sha, verdict.sha) if before and earlier
                      else (None, {}))
    renamed, code = F.renames(files) | moved, F.hunks(files)
    changed = _paths(files) - F.untouched(earlier, code) if changed is None else changed  # no compare: F.untouched
    rnd = F.converge(earlier, F.identify(seen(checks, review), code, renamed), verdict.sha, changed=changed,
                     paths=_paths(files), model_ran=review is not None, unread=frozenset(unread),
                     listed_all=listed_all, renamed=renamed)
    return with_round(verdict, rnd, code)


def _paths(files: list[dict[str, Any]]) -> set[str]:
    return {str(f.get("filename")) for f in files if F.present(f)}


async def _changed_between(gh: GitHubAPI, repo: str, was: str, now: str) -> tuple[set[str] | None, dict[str, str]]:
    """(the files that differ between two heads or None if GitHub cannot say, name at ``was`` → name at ``now`` of
    those renamed). GitHub's compare is three-dot (from the merge base): when ``now`` is not simply ahead of ``was``
    (back to an ancestor it lists nothing; it misses files only a dropped commit touched) it is asked the other way
    too."""
    there = await compare(gh, repo, was, now)
    if there is not None and there.forward:
        return (None if there.files is None else set(there.files)), there.renames
    back = await compare(gh, repo, now, was)
    moved = {new: old for old, new in (back.renames if back else {}).items()} | (there.renames if there else {})
    if there is None or back is None or there.files is None or back.files is None:
        return None, moved
    return set(there.files | back.files), moved


async def revisit(gh: GitHubAPI, store: Store, repo: str, number: int, verdict: Verdict) -> Verdict | None:
    """``verdict``, a head judged before and now the head again (a force-push back to it, A → B → A), with the
    findings in the state its code gives them: those open at it open again, those only later heads had closed as
    a new head's review would close them, none in a file the checks did not read at it. None: nothing to put back."""
    before = await store.load_findings(repo, number)
    if before is None or not before.findings or not verdict.note:
        return None
    files = [f async for f in gh.getiter(f"/repos/{repo}/pulls/{number}/files?per_page=100")]
    changed, moved = await _changed_between(gh, repo, before.sha, verdict.sha)
    renamed = F.renames(files) | moved
    earlier, code = F.load(before.findings), F.hunks(files)
    changed = _paths(files) - F.untouched(earlier, code) if changed is None else changed  # no compare: F.untouched
    now = F.lineage(earlier, (t for t in F.load(verdict.findings).values() if t.state == F.OPEN), renamed)
    # A verdict stored before reads were recorded: what its checks read is unknown, so no file counts as read.
    unread = set(verdict.unread or ()) if verdict.read_known else {renamed.get(t.path, t.path) for t in
                                                                    earlier.values() if t.path}
    rnd = F.converge(earlier, now, verdict.sha, changed=changed, paths=_paths(files), model_ran=True,
                     unread=frozenset(unread), listed_all=verdict.read_known and not verdict.unlisted,
                     renamed=renamed)
    return with_round(verdict, rnd, code)


def with_round(verdict: Verdict, rnd: F.Round, code: dict[str, dict[int, str]]) -> Verdict:
    """The verdict's review text, inline comments and thread comment for one head's round of findings. Only a new
    finding, or one found again after it was fixed (a credential put back is named again, not only counted), is
    reported in the review: on its line when the diff shows that line (else GitHub's 422), else in the body."""
    comments: list[dict[str, Any]] = []
    outside: list[F.Tracked] = []
    for t in (rnd.findings[fid] for fid in [*rnd.new, *rnd.reopened]):
        if t.path and t.line in code.get(t.path, {}) and len(comments) < MAX_INLINE:
            comments.append({"path": t.path, "line": t.line, "side": "RIGHT",
                             "body": T.inline(t) + T.again_note(rnd, t.id)})
        else:
            outside.append(t)
    return replace(verdict, note=T.note(verdict.title, rnd, len(comments), outside), comments=comments,
                   thread=T.thread(verdict.title, verdict.sha, verdict.body, rnd),
                   findings={fid: t.as_dict() for fid, t in F.kept(rnd.findings).items()})


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
    A → B → A) is not: the thread comment must follow its code again (:func:`post` revisits it)."""
    if (await store.find_posted(review_marker(repo, number, sha)) is None
            or await store.find_posted(check_marker(repo, sha)) is None):
        return False
    kept = await store.load_findings(repo, number)
    return kept is None or kept.sha == sha or not kept.findings


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
        review = await _own_reviews(gh, repo, number, verdict.sha, bot_login, mark)
        if review is None:
            review = await _review(gh, repo, number, verdict.sha, (body, mark), verdict.event, verdict.comments)
        await store.remember_posted(Posted(marker=mark, repo=repo, kind="review", github_id=review["id"],
                                           number=number))
        return
    # The head's review stands (a submitted review cannot change): the head is back after a later one was judged.
    if bot_login is None:
        bot_login = await _login_of_app(gh, repo, check, known)
    await dismiss_stale(gh, repo, number, verdict.sha, bot_login)
    if (back := await revisit(gh, store, repo, number, verdict)) is not None:  # the comment, then the record that
        await upsert_comment(gh, store, repo=repo, number=number, mark=thread_marker(repo, number), body=back.thread,
                             bot_login=bot_login)  # says it is done: a crash between edits it again on the retry
        await store.save_findings(PullFindings(repo=repo, number=number, sha=back.sha, findings=back.findings))


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
