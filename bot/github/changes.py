"""Deliver an approved change set: a draft PR from a new branch, or a fix commit on the PR's branch.

Commits are made through the Git data API (blobs → tree → commit → ref), so the bot never needs a
clone. Runs only after a person with write access approved; never for a fork's branch.

Every commit ends with a git trailer naming its run (``Triage-Lead-Run: <run id>``), and is recorded in the
store as soon as it is made, before any ref points at it. A ref update can land and the process die before
the delivery is recorded; the resumed step then finds its own commit on the branch (a recorded commit
carrying the trailer) instead of building a second one (which GitHub would refuse, or which would replace
the first). The trailer alone proves nothing: the run id is public, and anyone who can push to the branch
could otherwise make the bot believe its fix was delivered.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import quote, urlencode

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.core.defuse import code_span
from bot.core.markers import marker, with_marker
from bot.store import Posted, Store

log = logging.getLogger(__name__)

RUN_TRAILER = "Triage-Lead-Run"
# How far back from a branch head to look for our commit: others may have pushed on top meanwhile.
LOOKBACK = 20
_TRAILER_LINE = re.compile(r"([A-Za-z0-9][A-Za-z0-9-]*)\s*:\s*(.*)")
_SHA = re.compile(r"[0-9a-f]{40}")


class BranchMoved(Exception):
    """The pull request's branch is no longer where the approved change was made: committing it now would
    revert what was pushed since, so it is not committed. ``sha``: the branch's head now."""

    def __init__(self, branch: str, sha: str) -> None:
        super().__init__(f"{branch} moved to {sha[:7]} since the approval")
        self.sha = sha


def commit_message(title: str, body: str, run_id: str) -> str:
    """``title``, ``body``, then the trailer paragraph (last, as ``git interpret-trailers`` expects)."""
    return f"{title}\n\n{body}\n\n{RUN_TRAILER}: {run_id}\n"


def trailers(message: str) -> list[tuple[str, str]]:
    """The ``Key: value`` lines of the message's last paragraph, or none if any line there is not one
    (a stray ``Key: value`` inside prose is not a trailer)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:  # a subject line alone has no trailers
        return []
    found = [_TRAILER_LINE.fullmatch(line.strip()) for line in paragraphs[-1].splitlines()]
    if not all(found):
        return []
    return [(m.group(1), m.group(2).strip()) for m in found if m]


def made_by_run(message: str, run_id: str) -> bool:
    # Keys compare case-insensitively, as git does.
    return any(k.lower() == RUN_TRAILER.lower() and v == run_id for k, v in trailers(message))


async def on_branch(gh: GitHubAPI, repo: str, branch: str, sha: str | None) -> bool:
    """Whether commit ``sha`` is on ``branch`` of ``repo`` (its head or an ancestor), asked of GitHub: the
    three-dot comparison ``branch...sha`` is "identical" or "behind" exactly then. A fork's commit is known to
    its upstream too (a fork network shares its objects) and compares "ahead" or "diverged"; a commit GitHub
    does not know there (404, 422) is on no branch of it. One read."""
    if not sha or not _SHA.fullmatch(sha):
        return False
    try:
        found = await gh.getitem(f"/repos/{repo}/compare/{quote(branch, safe='/')}...{sha}?per_page=1")
    except BadRequest as exc:
        if exc.status_code in (404, 422):
            return False
        raise
    # Any other answer (no status, another shape) proves nothing: the commit is not taken as on the branch.
    return isinstance(found, dict) and found.get("status") in ("identical", "behind")


async def _issue_start(gh: GitHubAPI, repo: str, default: str, sha: str | None) -> str | None:
    """Where an issue's change starts: the commit its run read, when that commit is on the default branch, else
    the branch's head (None). A run's head can come from a webhook (a CI failure's commit), and a commit on no
    branch of this repository (a fork's) must never become the parent of a branch pushed here."""
    if sha is None or await on_branch(gh, repo, default, sha):
        return sha
    log.warning("%s: %s is not on %s: the change starts from the branch's head instead", repo, sha[:12], default)
    return None


def _made_marker(run_id: str, sha: str) -> str:
    return marker("commit", run_id, sha)


async def _delivered(gh: GitHubAPI, store: Store, repo: str, branch: str, run_id: str) -> str | None:
    """Our commit among the branch's newest ``LOOKBACK`` commits, if an earlier attempt already pushed it: one
    this run made and recorded. A foreign commit on the branch never counts, whatever trailer it carries."""
    query = urlencode({"sha": branch, "per_page": LOOKBACK})
    try:
        commits = await gh.getitem(f"/repos/{repo}/commits?{query}")
    except BadRequest as exc:
        if exc.status_code in (404, 409, 422):  # no such branch (yet), or an empty repository
            return None
        raise
    for c in commits:
        if made_by_run(c["commit"]["message"], run_id) and await store.find_posted(_made_marker(run_id, c["sha"])):
            return str(c["sha"])
    return None


async def _commit(gh: GitHubAPI, store: Store, repo: str, parent: str, files: list[dict[str, str]], message: str,
                  run_id: str) -> str:
    base = await gh.getitem(f"/repos/{repo}/git/commits/{parent}")
    # File contents go straight into the tree (GitHub makes the blobs): one write, not one per file.
    tree = [{"path": f["path"], "mode": "100644", "type": "blob", "content": f["content"]} for f in files]
    new_tree = await gh.post(f"/repos/{repo}/git/trees", data={"base_tree": base["tree"]["sha"], "tree": tree})
    commit = await gh.post(f"/repos/{repo}/git/commits",
                           data={"message": message, "tree": new_tree["sha"], "parents": [parent]})
    sha = str(commit["sha"])
    await store.remember_posted(Posted(marker=_made_marker(run_id, sha), repo=repo, kind="seen", github_id=0, url=sha))
    return sha


async def _head_of(gh: GitHubAPI, repo: str, branch: str) -> str:
    return str((await gh.getitem(f"/repos/{repo}/git/ref/heads/{branch}"))["object"]["sha"])


async def _push_fix(gh: GitHubAPI, store: Store, repo: str, branch: str, sha: str, run_id: str) -> str:
    """Non-forced: a branch that moved since the approval is never overwritten. A 422 may still be our own
    update (a racing attempt of this step, or a lost answer retried after someone pushed on top): look once."""
    try:
        await gh.patch(f"/repos/{repo}/git/refs/heads/{branch}", data={"sha": sha, "force": False})
        return sha
    except BadRequest as exc:
        if exc.status_code != 422:
            raise
        if (ours := await _delivered(gh, store, repo, branch, run_id)) is None:
            raise BranchMoved(branch, await _head_of(gh, repo, branch)) from exc
        return ours


async def _push_to_pull(gh: GitHubAPI, store: Store, repo: str, branch: str, run_id: str,
                        files: list[dict[str, str]], message: str, base_sha: str | None) -> str:
    """The fix commit on a same-repository PR's branch, or the one an earlier attempt already put there. It is
    made on the commit the change was computed and approved on and must fast-forward the branch."""
    if (ours := await _delivered(gh, store, repo, branch, run_id)) is not None:
        return ours
    head = await _head_of(gh, repo, branch)
    if base_sha and head != base_sha:
        raise BranchMoved(branch, head)  # no commit made: the same answer the ref update would give
    sha = await _commit(gh, store, repo, base_sha or head, files, message, run_id)
    return await _push_fix(gh, store, repo, branch, sha, run_id)


async def _branch_for_pull(gh: GitHubAPI, store: Store, repo: str, branch: str, base: str, run_id: str,
                           files: list[dict[str, str]], message: str, base_sha: str | None) -> None:
    """The bot's own branch holding the change, made once: an earlier attempt's commit is kept as it is. It
    starts from the commit the run read (``base_sha``), not the default branch's newest: whatever was merged
    since shows as a conflict in the pull request instead of being silently reverted by whole-file contents."""
    if await _delivered(gh, store, repo, branch, run_id) is not None:
        return
    head = base_sha or await _head_of(gh, repo, base)
    sha = await _commit(gh, store, repo, head, files, message, run_id)
    try:
        await gh.post(f"/repos/{repo}/git/refs", data={"ref": f"refs/heads/{branch}", "sha": sha})
    except BadRequest as exc:  # the branch exists without this run's commit (e.g. pushed before trailers)
        if exc.status_code != 422:
            raise
        await gh.patch(f"/repos/{repo}/git/refs/heads/{branch}", data={"sha": sha, "force": True})


async def deliver(gh: GitHubAPI, store: Store, *, run_id: str, ctx: dict[str, Any], files: list[dict[str, str]],
                  workflow: str, title: str, base_sha: str | None = None) -> tuple[str | None, str | None]:
    """Returns (draft PR url, pushed commit) — one of them — for the approved ``files``, committed on
    ``base_sha``, the commit the run read and the approval was given for.

    A fix for a PR must fast-forward its branch: if the branch moved since, :class:`BranchMoved` is raised
    and nothing is written, rather than overwrite newer work with contents computed for older code."""
    repo, number = ctx["repo"], ctx.get("number")
    mark = marker("delivered", run_id)
    done = await store.find_posted(mark)
    if done is not None:
        return (done.url, None) if done.kind == "pull" else (None, done.url)
    message = commit_message(title, f"Proposed by triage-lead ({workflow}) for #{number}, approved on the thread.",
                             run_id)
    default = ctx.get("default_branch") or "main"
    # Only a branch of this repository that is not its default branch; a deleted fork has no head repo.
    same_repo_pr = (ctx.get("is_pull_request") and ctx.get("head_ref") and ctx.get("head_repo") == repo
                    and not ctx.get("from_fork") and ctx.get("head_ref") != default)
    if workflow == "error-investigation" and same_repo_pr:
        sha = await _push_to_pull(gh, store, repo, ctx["head_ref"], run_id, files, message, base_sha)
        await store.remember_posted(Posted(marker=mark, repo=repo, kind="push", github_id=0, number=number, url=sha))
        return None, sha
    branch = branch_for(run_id)
    # On a same-repository PR the change was made on the PR's code: it is proposed into the PR's branch, so it
    # shows only the bot's change and merging it updates the PR.
    into = ctx["head_ref"] if same_repo_pr else default
    # Never a fork's commit as the base: the branch would carry the fork author's commits into this repository
    # (where `on: push` workflows run with its secrets). A fork's change starts from the base it was compared with.
    # An issue's change starts from the commit its run read only once that commit is known to be on the default
    # branch (a CI failure's run reads the failing commit, which a webhook named).
    start = (base_sha if same_repo_pr else ctx.get("base_sha") if ctx.get("is_pull_request")
             else await _issue_start(gh, repo, default, base_sha))
    await _branch_for_pull(gh, store, repo, branch, into, run_id, files, message, start)
    pull = await _open_pull(gh, repo, branch, into, title, _pull_body(ctx, workflow, files, mark), closing_line(ctx))
    await store.remember_posted(Posted(marker=mark, repo=repo, kind="pull", github_id=pull["id"],
                                       number=pull["number"], url=pull.get("html_url")))
    return pull.get("html_url"), None


def branch_for(run_id: str) -> str:
    """The bot's branch for a run: plain characters only, whatever the delivery id that named the run holds."""
    return "triage-lead/" + (re.sub(r"[^A-Za-z0-9_-]", "-", run_id[:18]) or "run")


def closing_line(ctx: dict[str, Any]) -> str:
    """The pull request's first line: ``Closes #N`` for the issue it was made for (the one closing keyword the
    bot writes itself: the GitHub client lets it through, and no other), ``For #N`` on a pull request."""
    number = ctx.get("number")
    return f"Closes #{number}" if number and not ctx.get("is_pull_request") else f"For #{number}"


def _pull_body(ctx: dict[str, Any], workflow: str, files: list[dict[str, str]], mark: str) -> str:
    number = ctx.get("number")
    return with_marker(f"{closing_line(ctx)}\n\nChanges proposed by triage-lead's {code_span(workflow, 100)} "
                       f"workflow, reviewed by its code-review gate and approved on #{number}. Files: "
                       + ", ".join(code_span(f["path"], 300) for f in files[:50])
                       + (f" and {len(files) - 50} more" if len(files) > 50 else ""), mark)


async def _open_pull(gh: GitHubAPI, repo: str, branch: str, base: str, title: str, body: str,
                     keep: str) -> dict[str, Any]:
    try:
        return await gh.post(f"/repos/{repo}/pulls", data={"title": title[:200], "head": branch, "base": base,  # type: ignore[call-arg]
                                                           "body": body, "draft": True}, keep=[keep])
    except BadRequest as exc:  # a retried step: the PR exists from the first attempt
        if exc.status_code != 422:
            raise
        owner = repo.split("/")[0]
        found = [p async for p in gh.getiter(f"/repos/{repo}/pulls?head={owner}:{branch}&state=all")]
        if not found:
            raise
        return dict(found[0])
