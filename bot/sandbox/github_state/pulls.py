"""Pull requests in the sandbox GitHub's model: a head commit that really applies the seeded patches,
fork heads, the pull request's JSON shape and files, and reviews left by others."""

from __future__ import annotations

import re

from .apps import AppsState
from .base import WEB, Repo, git_sha, iso, node_id
from .contents import ContentsState, apply_patch, patch_status
from .issues import IssuesState

_HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


class PullsState(IssuesState, AppsState, ContentsState):
    """A pull request is an issue with a ``__pull`` record (branches, shas, files, reviews)."""

    def add_pull(self, full_name: str, *, title: str, body: str = "", user: str = "octocat", head_ref: str = "feature",
                 head_sha: str | None = None, base_ref: str = "main", files: dict[str, str] | None = None,
                 head_repo: str | None = None, number: int | None = None, draft: bool = False,
                 state: str = "open", user_type: str = "User") -> dict:
        """A PR whose head commit really applies ``files`` (path -> patch) on top of ``base_ref``;
        ``head_repo`` (created as a fork if missing) makes it a cross-repo PR."""
        repo = self.repo(full_name)
        hrepo = repo if not head_repo else self._repos.get(head_repo.lower()) or self.repo(
            self.add_repo(head_repo, fork_of=full_name)["full_name"])
        base_sha = self.branch_sha(repo, base_ref, create=True)
        flat = self.flatten(self.commit_tree(base_sha))
        for path, patch in (files or {}).items():
            if patch_status(patch) == "removed":
                flat.pop(path, None)
            else:
                old = self.blob_text(flat[path][2]) if path in flat else ""
                flat[path] = ("100644", "blob", self.put_blob(apply_patch(old, patch).encode()))
        sha = self.put_commit(self.build_tree(flat), [base_sha], title)
        if head_sha:
            self._objects[head_sha] = self._objects[sha]  # an alias, so the given sha resolves as a commit
            sha = head_sha
        hrepo.refs[f"refs/heads/{head_ref}"] = sha
        issue = self._make_issue(repo, title=title, body=body, user=user, user_type=user_type, number=number,
                                 state=state)
        self._attach_pull(repo, issue, head_ref, sha, hrepo, base_ref, base_sha, draft, files)
        return self.pull_json(repo, issue)

    def _attach_pull(self, repo: Repo, issue: dict, head_ref: str, head_sha: str, hrepo: Repo, base_ref: str,
                     base_sha: str, draft: bool, files: dict[str, str] | None) -> None:
        n, html = issue["number"], f"{WEB}/{repo.full_name}/pull/{issue['number']}"
        issue["html_url"] = html
        issue["pull_request"] = {"url": f"{repo.api}/pulls/{n}", "html_url": html, "diff_url": html + ".diff",
                                 "patch_url": html + ".patch", "merged_at": None}
        file_list = None if files is None else [
            self._file_entry(repo, path, patch_status(patch), patch, git_sha("blob", patch.encode()), head_sha)
            for path, patch in files.items()]
        issue["__pull"] = {"id": self._new_id(), "head_ref": head_ref, "head_sha": head_sha, "draft": draft,
                           "head_repo": hrepo.full_name, "base_ref": base_ref, "base_sha": base_sha,
                           "files": file_list, "reviews": []}
        repo.refs[f"refs/pull/{n}/head"] = head_sha

    def pull_head_sha(self, issue: dict) -> str:
        """The head branch's tip while open (pushes move PRs), else the recorded sha."""
        p = issue["__pull"]
        hrepo = self._repos.get(p["head_repo"].lower())
        if issue["state"] == "open" and hrepo:
            return hrepo.refs.get(f"refs/heads/{p['head_ref']}", p["head_sha"])
        return p["head_sha"]

    def pull_json(self, repo: Repo, issue: dict) -> dict:
        p, url = issue["__pull"], issue["pull_request"]["url"]
        head_sha, files = self.pull_head_sha(issue), self.pull_files(repo, issue)

        def side(ref: str, sha: str, full_name: str) -> dict:
            r = self._repos.get(full_name.lower())
            owner = full_name.split("/")[0]
            return {"label": f"{owner}:{ref}", "ref": ref, "sha": sha, "user": self.user(owner),
                    "repo": self.repo_json(r) if r else None}

        d = self.issue_json(repo, issue)
        for k in ("pull_request", "labels_url", "events_url", "repository_url", "reactions", "state_reason"):
            del d[k]
        if p.get("seen_head") != head_sha:  # a push moved the head (however the test moved it): GitHub's
            p["seen_head"], p["head_moved_at"] = head_sha, iso()  # updated_at is then the push's time
        d["updated_at"] = max(d["updated_at"], p["head_moved_at"])
        return d | {
            "id": p["id"], "node_id": node_id("PR", p["id"]), "url": url, "issue_url": issue["url"],
            "diff_url": issue["html_url"] + ".diff", "patch_url": issue["html_url"] + ".patch",
            "commits_url": url + "/commits", "review_comments_url": url + "/comments",
            "statuses_url": f"{repo.api}/statuses/{head_sha}", "head": side(p["head_ref"], head_sha, p["head_repo"]),
            "base": side(p["base_ref"], repo.refs.get(f"refs/heads/{p['base_ref']}", p["base_sha"]), repo.full_name),
            "draft": p["draft"], "merged": False, "merged_at": None, "merge_commit_sha": None, "mergeable": True,
            "mergeable_state": "clean", "requested_reviewers": [], "requested_teams": [], "auto_merge": None,
            "merged_by": None, "maintainer_can_modify": False, "review_comment_url": url + "/comments{/number}",
            "_links": {k: {"href": v} for k, v in {
                "self": url, "html": issue["html_url"], "issue": issue["url"], "comments": issue["url"] + "/comments",
                "review_comments": url + "/comments", "review_comment": url + "/comments{/number}",
                "commits": url + "/commits", "statuses": f"{repo.api}/statuses/{head_sha}"}.items()},
            "review_comments": 0, "commits": max(1, len(self.ancestors(head_sha) - self.ancestors(p["base_sha"]))),
            "additions": sum(f["additions"] for f in files), "deletions": sum(f["deletions"] for f in files),
            "changed_files": len(files)}

    def pull_files(self, repo: Repo, issue: dict) -> list[dict]:
        """The seeded patches, or else the real diff between the merge base and the head."""
        p = issue["__pull"]
        if p["files"] is not None:
            return p["files"]
        head = self.pull_head_sha(issue)
        return self.diff_files(repo, self.merge_base(p["base_sha"], head), head)

    def diff_sides(self, repo: Repo, issue: dict) -> dict[str, dict[str, set[int]]]:
        """Where a review comment may sit, as GitHub allows it: by file, the lines of each side (RIGHT: added and
        context lines of the new file; LEFT: removed and context lines of the old) inside the diff's hunks."""
        out: dict[str, dict[str, set[int]]] = {}
        for f in self.pull_files(repo, issue):
            sides = out[f["filename"]] = {"LEFT": set(), "RIGHT": set()}
            old = new = 0
            for raw in (f.get("patch") or "").splitlines():
                if m := _HUNK.match(raw):
                    old, new = int(m[1]), int(m[2])
                elif raw.startswith("-") and old:
                    sides["LEFT"].add(old)
                    old += 1
                elif raw.startswith("+") and new:
                    sides["RIGHT"].add(new)
                    new += 1
                elif not raw.startswith("\\") and new:
                    sides["LEFT"].add(old)
                    sides["RIGHT"].add(new)
                    old, new = old + 1, new + 1
        return out

    def add_review(self, full_name: str, number: int, body: str, *, user: str = "octocat", user_type: str = "User",
                   state: str = "COMMENTED") -> dict:
        """A review someone else left on a pull request (the App's own are made through the API)."""
        issue = self.get_issue(self.repo(full_name), number, pull=True)
        return self._add_review(issue, user, user_type, body=body, state=state, association="CONTRIBUTOR",
                                submitted=True, commit_id=None, comments=[])

    def _add_review(self, issue: dict, login: str, user_type: str | None, *, body: str, state: str,
                    association: str, submitted: bool, commit_id: str | None, comments: list) -> dict:
        """A review on ``issue``'s pull request in GitHub's shape (``commit_id`` None: the head now)."""
        rid = self._new_id()
        review = {"id": rid, "node_id": node_id("PRR", rid), "user": self.user(login, user_type), "body": body,
                  "state": state, "author_association": association,
                  "html_url": f"{issue['html_url']}#pullrequestreview-{rid}",
                  "_links": {"html": {"href": f"{issue['html_url']}#pullrequestreview-{rid}"},
                             "pull_request": {"href": issue["pull_request"]["url"]}},
                  "pull_request_url": issue["pull_request"]["url"], "submitted_at": iso() if submitted else None,
                  "commit_id": commit_id or self.pull_head_sha(issue), "__comments": comments}
        issue["__pull"]["reviews"].append(review)
        return review

    def reviews(self, full_name: str, number: int) -> list[dict]:
        return list(self.get_issue(self.repo(full_name), number, pull=True)["__pull"]["reviews"])
