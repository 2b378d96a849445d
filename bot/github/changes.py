"""Deliver an approved change set: a draft PR from a new branch, or a fix commit on the PR's branch.

Commits are made through the Git data API (blobs → tree → commit → ref), so the bot never needs a
clone. Runs only after a person with write access approved; never for a fork's branch.
"""

from __future__ import annotations

from typing import Any

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.markers import marker, with_marker
from bot.store import Posted, Store


async def _commit(gh: GitHubAPI, repo: str, parent: str, files: list[dict[str, str]], message: str) -> str:
    base = await gh.getitem(f"/repos/{repo}/git/commits/{parent}")
    # File contents go straight into the tree (GitHub makes the blobs): one write, not one per file.
    tree = [{"path": f["path"], "mode": "100644", "type": "blob", "content": f["content"]} for f in files]
    new_tree = await gh.post(f"/repos/{repo}/git/trees", data={"base_tree": base["tree"]["sha"], "tree": tree})
    commit = await gh.post(f"/repos/{repo}/git/commits",
                           data={"message": message, "tree": new_tree["sha"], "parents": [parent]})
    return str(commit["sha"])


async def deliver(gh: GitHubAPI, store: Store, *, run_id: str, ctx: dict[str, Any], files: list[dict[str, str]],
                  workflow: str, title: str, approved_sha: str | None = None) -> tuple[str | None, str | None]:
    """Returns (draft PR url, pushed commit) — one of them — for the approved ``files``.

    A fix for a PR is committed on the head the approval was given for: if the branch moved since, the
    non-forced ref update fails rather than overwrite newer work with contents computed for older code."""
    repo, number = ctx["repo"], ctx.get("number")
    mark = marker("delivered", run_id)
    done = await store.find_posted(mark)
    if done is not None:
        return (done.url, None) if done.kind == "pull" else (None, done.url)
    message = f"{title}\n\nProposed by triage-lead ({workflow}) for #{number}, approved on the thread."
    default = ctx.get("default_branch") or "main"
    # Only a branch of this repository that is not its default branch; a deleted fork has no head repo.
    same_repo_pr = (ctx.get("is_pull_request") and ctx.get("head_ref") and ctx.get("head_repo") == repo
                    and not ctx.get("from_fork") and ctx.get("head_ref") != default)
    if workflow == "error-investigation" and same_repo_pr:
        ref = f"heads/{ctx['head_ref']}"
        head = approved_sha or (await gh.getitem(f"/repos/{repo}/git/ref/{ref}"))["object"]["sha"]
        sha = await _commit(gh, repo, head, files, message)
        await gh.patch(f"/repos/{repo}/git/refs/{ref}", data={"sha": sha, "force": False})
        await store.remember_posted(Posted(marker=mark, repo=repo, kind="push", github_id=0, number=number, url=sha))
        return None, sha
    head = (await gh.getitem(f"/repos/{repo}/git/ref/heads/{default}"))["object"]["sha"]
    sha = await _commit(gh, repo, head, files, message)
    branch = f"triage-lead/{run_id[:18]}"
    try:
        await gh.post(f"/repos/{repo}/git/refs", data={"ref": f"refs/heads/{branch}", "sha": sha})
    except BadRequest as exc:  # a retried step: the branch exists from the first attempt
        if exc.status_code != 422:
            raise
        await gh.patch(f"/repos/{repo}/git/refs/heads/{branch}", data={"sha": sha, "force": True})
    closes = f"Closes #{number}" if number and not ctx.get("is_pull_request") else f"For #{number}"
    body = with_marker(f"{closes}\n\nChanges proposed by triage-lead's `{workflow}` workflow, reviewed by its "
                       f"code-review gate and approved on #{number}. Files: "
                       + ", ".join(f"`{f['path']}`" for f in files), mark)
    try:
        pull = await gh.post(f"/repos/{repo}/pulls", data={"title": title[:200], "head": branch, "base": default,
                                                           "body": body, "draft": True})
    except BadRequest as exc:  # a retried step: the PR exists from the first attempt
        if exc.status_code != 422:
            raise
        owner = repo.split("/")[0]
        found = [p async for p in gh.getiter(f"/repos/{repo}/pulls?head={owner}:{branch}&state=all")]
        if not found:
            raise
        pull = found[0]
    await store.remember_posted(Posted(marker=mark, repo=repo, kind="pull", github_id=pull["id"],
                                       number=pull["number"], url=pull.get("html_url")))
    return pull.get("html_url"), None
