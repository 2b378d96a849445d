"""Git data routes of the sandbox GitHub: refs (created, fast-forwarded or forced), blobs, trees and
commits, with GitHub's 422s for missing or wrong-typed objects."""

from __future__ import annotations

import base64
import re
from typing import Any

from aiohttp import web

from ..github_state import ApiError, b64_lines, invalid, node_id
from .handlers import REPO, Handlers, R, Route


class GitRoutes(Handlers):
    """The Git Database API: refs, blobs, trees, commits."""

    def git_routes(self) -> list[Route]:
        t = "token"
        return [
            ("GET", f"{R}/git/ref/{{ref:.+}}", self.h_ref, t),
            ("GET", f"{R}/git/refs/{{ref:.+}}", self.h_ref, t),
            ("GET", f"{R}/git/matching-refs/{{ref:.*}}", lambda rq: [self.ref_json(rq[REPO], r) for r in sorted(
                rq[REPO].refs) if r.startswith("refs/" + rq.match_info["ref"])], t),
            ("POST", f"{R}/git/refs", self.h_create_ref, t),
            ("PATCH", f"{R}/git/refs/{{ref:.+}}", self.h_update_ref, t),
            ("POST", f"{R}/git/blobs", self.h_create_blob, t),
            ("GET", f"{R}/git/blobs/{{file_sha}}", self.h_blob, t),
            ("POST", f"{R}/git/trees", self.h_create_tree, t),
            ("GET", f"{R}/git/trees/{{tree_sha:.+}}", self.h_tree, t),
            ("POST", f"{R}/git/commits", self.h_create_commit, t),
            ("GET", f"{R}/git/commits/{{commit_sha}}",
             lambda rq: self.git_commit_json(rq[REPO], rq.match_info["commit_sha"]), t),
        ]

    def h_ref(self, rq: web.Request) -> Any:
        repo, ref = rq[REPO], "refs/" + rq.match_info["ref"]
        self._get(repo.refs, ref)
        return self.ref_json(repo, ref)

    def _commit_sha(self, sha: Any, message: str) -> str:
        if not isinstance(sha, str) or self._objects.get(sha, {}).get("type") != "commit":
            raise ApiError(422, message)
        return sha

    def h_create_ref(self, rq: web.Request) -> Any:
        repo, b = rq[REPO], self._body(rq)
        if not isinstance(ref := b.get("ref"), str) or not re.fullmatch(r"refs/[^/\s]+/\S+", ref):
            raise ApiError(422, "Reference name is invalid" if ref else "Invalid request.\n\n\"ref\" wasn't supplied.")
        sha = self._commit_sha(b.get("sha"), "Object does not exist")
        if ref in repo.refs:
            raise ApiError(422, "Reference already exists")
        repo.refs[ref] = sha
        self._write("ref", repo, None, {"ref": ref, "sha": sha})
        return self.ref_json(repo, ref), 201

    def h_update_ref(self, rq: web.Request) -> Any:
        repo, b, ref = rq[REPO], self._body(rq), "refs/" + rq.match_info["ref"]
        if ref not in repo.refs:
            raise ApiError(422, "Reference does not exist")
        sha = self._commit_sha(b.get("sha"), "Object does not exist")
        if not b.get("force") and repo.refs[ref] not in self.ancestors(sha):
            raise ApiError(422, "Update is not a fast forward")
        repo.refs[ref] = sha
        self._write("ref_update", repo, None, {"ref": ref, "sha": sha, "force": bool(b.get("force"))})
        return self.ref_json(repo, ref)

    def h_create_blob(self, rq: web.Request) -> Any:
        repo, b = rq[REPO], self._body(rq)
        if not isinstance(b.get("content"), str):
            raise invalid("Blob", "content")
        if (enc := b.get("encoding", "utf-8")) not in ("utf-8", "utf8", "base64"):
            raise invalid("Blob", "encoding", "invalid")
        try:
            sha = self.put_blob(base64.b64decode(b["content"]) if enc == "base64" else b["content"].encode())
        except ValueError:
            raise invalid("Blob", "content", "invalid") from None
        self._write("blob", repo, None, b | {"sha": sha})
        return {"url": f"{repo.api}/git/blobs/{sha}", "sha": sha}, 201

    def h_blob(self, rq: web.Request) -> Any:
        repo, sha = rq[REPO], rq.match_info["file_sha"]
        data = self.obj(sha, "blob")["content"]
        return {"sha": sha, "node_id": node_id("B", sha), "size": len(data), "encoding": "base64",
                "url": f"{repo.api}/git/blobs/{sha}", "content": b64_lines(data)}

    def h_create_tree(self, rq: web.Request) -> Any:
        """base_tree + entries (path, mode, type, sha | content; sha null deletes), as the Git Trees API."""
        repo, b = rq[REPO], self._body(rq)
        if not isinstance(b.get("tree"), list):
            raise invalid("Tree", "tree")
        if (base := b.get("base_tree")) and self._objects.get(base, {}).get("type") != "tree":
            raise ApiError(422, "base_tree is not a valid tree oid")
        flat = self.flatten(base) if base else {}
        for e in b["tree"]:
            path, typ, mode = str(e.get("path", "")).strip("/"), e.get("type", "blob"), e.get("mode", "100644")
            sha = self.put_blob(str(e["content"]).encode()) if e.get("content") is not None else e.get("sha")
            if sha is None or typ == "tree":
                for k in [k for k in flat if k == path or k.startswith(path + "/")]:
                    del flat[k]
            if sha is not None and typ == "tree":
                flat |= self.flatten(sha, path + "/")
            elif sha is not None:
                if typ == "blob" and self._objects.get(sha, {}).get("type") != "blob":
                    raise ApiError(422, f"tree.sha {sha} is not a valid blob")
                flat[path] = (mode, typ, sha)
        sha = self.build_tree(flat)
        self._write("tree", repo, None, {"sha": sha, "base_tree": base, "paths": [e.get("path") for e in b["tree"]]})
        return self.tree_json(repo, sha, False), 201

    def h_tree(self, rq: web.Request) -> Any:
        """A tree by sha, or the root tree of a commit sha or branch name (GitHub accepts both)."""
        repo, sha = rq[REPO], rq.match_info["tree_sha"]
        if self._objects.get(sha, {}).get("type") != "tree":
            sha = self.commit_tree(self._must(self.resolve(repo, sha)))
        return self.tree_json(repo, sha, rq.query.get("recursive") not in (None, "", "0", "false"))

    def h_create_commit(self, rq: web.Request) -> Any:
        repo, b = rq[REPO], self._body(rq)
        if not isinstance(b.get("message"), str):
            raise invalid("Commit", "message")
        tree = b.get("tree")
        if not isinstance(tree, str) or self._objects.get(tree, {}).get("type") != "tree":
            raise ApiError(422, "Tree SHA does not exist")
        parents = [self._commit_sha(p, "Parent SHA does not exist or is not a commit object")
                   for p in b.get("parents") or []]
        sha = self.put_commit(b["tree"], parents, b["message"], b.get("author"), b.get("committer"))
        self._write("commit", repo, None, {"sha": sha, "message": b["message"], "tree": b["tree"], "parents": parents})
        return self.git_commit_json(repo, sha), 201
