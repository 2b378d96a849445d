"""Contents and commits routes of the sandbox GitHub: reading and writing files, listing commits, one
commit with its files, and three-dot comparisons."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from ..github_state import ApiError
from .handlers import REPO, Handlers, R, Route


class ContentRoutes(Handlers):
    """Files on a branch, commit history and comparisons (the REST views of git data)."""

    def content_routes(self) -> list[Route]:
        t = "token"
        return [
            ("GET", f"{R}/contents", self.h_contents, t),
            ("GET", f"{R}/contents/{{path:.*}}", self.h_contents, t),  # "contents/" is the root, as on GitHub
            ("PUT", f"{R}/contents/{{path:.+}}", self.h_put_contents, t),
            ("GET", f"{R}/commits", self.h_commits, t),
            ("GET", f"{R}/commits/{{ref:.+}}", self.h_commit, t),
            ("GET", f"{R}/compare/{{basehead:.+}}", self.h_compare, t),
        ]

    def h_contents(self, rq: web.Request) -> Any:
        """A file (base64, or raw with an Accept: ...raw header) or a directory listing."""
        repo, path = rq[REPO], rq.match_info.get("path", "").strip("/")
        ref = rq.query.get("ref") or repo.data["default_branch"]
        if (sha := self.resolve(repo, ref)) is None:
            raise ApiError(404, f"No commit found for the ref {ref}")
        e = self._must(self.lookup(self.commit_tree(sha), path))
        if e["type"] == "tree":
            return [self.content_json(repo, f"{path}/{c['path']}".lstrip("/"), c, ref, False)
                    for c in self.obj(e["sha"], "tree")["entries"]]
        if "raw" in rq.headers.get("Accept", ""):
            return web.Response(body=self.obj(e["sha"], "blob")["content"], content_type="text/plain")
        return self.content_json(repo, path, e, ref, True)

    def h_put_contents(self, rq: web.Request) -> Any:
        """Create or update one file with a commit; updating needs the current blob ``sha``, as on GitHub."""
        repo, b, path = rq[REPO], self._body(rq), rq.match_info["path"].strip("/")
        for f in ("message", "content"):
            if not isinstance(b.get(f), str):
                raise ApiError(422, f"Invalid request.\n\n\"{f}\" wasn't supplied.")
        branch = b.get("branch") or repo.data["default_branch"]
        head = self._get(repo.refs, f"refs/heads/{branch}")
        old = self.lookup(self.commit_tree(head), path)
        if old is not None and not b.get("sha"):
            raise ApiError(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
        if old is not None and b["sha"] != old["sha"]:
            raise ApiError(409, f"{path} does not match {b['sha']}")
        blob = self.put_blob(base64.b64decode(b["content"]))
        flat = self.flatten(self.commit_tree(head)) | {path: ("100644", "blob", blob)}
        sha = repo.refs[f"refs/heads/{branch}"] = self.put_commit(self.build_tree(flat), [head], b["message"],
                                                                  b.get("author"), b.get("committer"))
        self._write("contents", repo, None, {k: v for k, v in b.items() if k != "content"}
                    | {"path": path, "branch": branch, "commit": sha})
        content = self.content_json(repo, path, self._must(self.lookup(self.commit_tree(sha), path)), branch, False)
        return {"content": content, "commit": self.git_commit_json(repo, sha)}, 200 if old else 201

    def h_commits(self, rq: web.Request) -> Any:
        """Newest first from ``sha`` (branch or sha); ``path`` keeps commits that changed it."""
        repo, q = rq[REPO], rq.query
        ref = q.get("sha") or repo.data["default_branch"]
        if (head := self.resolve(repo, ref)) is None:
            raise ApiError(404, f"No commit found for SHA: {ref}")
        shas = self.history(head)
        if path := q.get("path", "").strip("/"):
            def at(s: str | None) -> dict | None:
                return self.lookup(self.commit_tree(s), path) if s else None
            shas = [s for s in shas if at(s) != at((self.obj(s, "commit")["parents"] or [None])[0])]
        return self._page(rq, shas, lambda s: self.commit_json(repo, s))

    def h_compare(self, rq: web.Request) -> Any:
        """``base...head``: status (identical, ahead, behind, diverged), the commits head has that base lacks, and
        the files changed from their merge base to head, as GitHub's three-dot comparison does."""
        repo, basehead = rq[REPO], rq.match_info["basehead"]
        base_ref, sep, head_ref = basehead.partition("...")
        if not sep:
            raise ApiError(404, "Not Found")
        base, head = self.resolve(repo, base_ref), self.resolve(repo, head_ref)
        if base is None or head is None:
            raise ApiError(404, "Not Found")
        mine, theirs = self.ancestors(head), self.ancestors(base)
        ahead = [s for s in self.history(head) if s not in theirs]
        behind = [s for s in self.history(base) if s not in mine]
        status = ("identical" if base == head else "ahead" if not behind else "behind" if not ahead else "diverged")
        merge_base = self.merge_base(base, head)
        return {"url": f"{repo.api}/compare/{basehead}", "html_url": f"https://github.com/{repo.full_name}/compare/{basehead}",
                "permalink_url": f"https://github.com/{repo.full_name}/compare/{basehead}",
                "diff_url": f"https://github.com/{repo.full_name}/compare/{basehead}.diff",
                "patch_url": f"https://github.com/{repo.full_name}/compare/{basehead}.patch",
                "base_commit": self.commit_json(repo, base), "merge_base_commit": self.commit_json(repo, merge_base),
                "status": status, "ahead_by": len(ahead), "behind_by": len(behind), "total_commits": len(ahead),
                "commits": [self.commit_json(repo, c) for c in reversed(ahead)][:250],
                "files": self.diff_files(repo, merge_base, head)[:300]}

    def h_commit(self, rq: web.Request) -> Any:
        repo, ref = rq[REPO], rq.match_info["ref"]
        if (sha := self.resolve(repo, ref)) is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return self.commit_json(repo, sha, with_files=True)
