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

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot import render
from bot.agents.gate import Finding
from bot.github.writes import digest, is_own_marked
from bot.markers import marker, markers_in, with_marker
from bot.store import Posted, Store

CHECK = "triage-lead / code-review"
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


def decide(sha: str, findings: list[Finding], review: dict[str, Any] | None, *, no_model: str = "") -> Verdict:
    """The verdict on the PR at ``sha``. ``review``: the model's review with the gate already applied, or None
    when no model reviewed it (``no_model`` says why, for the people reading)."""
    critical = [f for f in findings if f.severity == "critical"]
    rejected = bool(critical) or (review is not None and review.get("verdict") != "APPROVED")
    if rejected:
        event, conclusion, headline = "REQUEST_CHANGES", "failure", "changes requested"
    elif review is not None:
        event, conclusion, headline = "APPROVE", "success", "approved by the model review and the checks"
    else:
        event, conclusion, headline = "COMMENT", "action_required", "no model reviewed it, a person must"
    title = f"{headline[:1].upper()}{headline[1:]} ({sha[:7]})"
    body = render.pull_verdict(sha=sha, headline=headline, findings=[{**f.item(), "severity": f.severity} for f in findings],
                               review=review, covered=COVERED, no_model=no_model if review is None else "")
    return Verdict(sha=sha, event=event, conclusion=conclusion, title=title, body=body)


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
    """The PR review and the check run for ``verdict.sha``, each once (found again after a crash)."""
    mark = review_marker(repo, number, verdict.sha)
    if await store.find_posted(mark) is None:
        if not await _review_exists(gh, repo, number, mark, bot_login):
            review = await _review(gh, repo, number, verdict.sha, with_marker(verdict.body, mark), verdict.event)
            await store.remember_posted(Posted(marker=mark, repo=repo, kind="review", github_id=review["id"],
                                               number=number))
    check_mark = check_marker(repo, verdict.sha)
    if await store.find_posted(check_mark) is not None:
        return
    found = await _check_exists(gh, repo, verdict.sha, app_id)
    if found is None:
        found = await gh.post(f"/repos/{repo}/check-runs", data={
            "name": CHECK, "head_sha": verdict.sha, "status": "completed", "conclusion": verdict.conclusion,
            "external_id": external_id(verdict.sha), **({"details_url": details_url} if details_url else {}),
            "output": {"title": verdict.title, "summary": render.clip(verdict.body, 60_000)}})
    await store.remember_posted(Posted(marker=check_mark, repo=repo, kind="check_run", github_id=found["id"]))


async def _review_exists(gh: GitHubAPI, repo: str, number: int, mark: str, bot_login: str | None) -> bool:
    """This App's review for the head, posted before a crash kept us from recording it. Only a review by the
    App's own login, ending with the marker, counts: a fork author can paste the marker into theirs."""
    key = markers_in(mark)[0]
    async for review in gh.getiter(f"/repos/{repo}/pulls/{number}/reviews?per_page=100"):
        if is_own_marked(review, key, bot_login):
            return True
    return False


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
