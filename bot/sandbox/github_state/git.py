"""Git data in the sandbox GitHub's model: content-addressed blobs, trees and commits (hashed as git
does, shared by all repositories like a fork network), refs, history and ref resolution."""

from __future__ import annotations

import re
from datetime import datetime

from .base import WEB, ApiError, Repo, StateBase, git_sha, iso, node_id


class GitState(StateBase):
    """The object store and refs, and the git-data API's JSON shapes of them."""

    def put_blob(self, content: bytes) -> str:
        sha = git_sha("blob", content)
        self._objects[sha] = {"type": "blob", "content": content}
        return sha

    def put_tree(self, entries: list[dict]) -> str:
        """entries: [{path (one name), mode, type, sha}], hashed as git does."""
        entries = sorted(entries, key=lambda e: e["path"] + ("/" if e["type"] == "tree" else ""))
        raw = b"".join(f"{e['mode'].lstrip('0')} {e['path']}\0".encode() + bytes.fromhex(e["sha"]) for e in entries)
        sha = git_sha("tree", raw)
        self._objects[sha] = {"type": "tree", "entries": entries}
        return sha

    def put_commit(self, tree: str, parents: list[str], message: str, author: dict | None = None,
                   committer: dict | None = None) -> str:
        author = {"date": iso(), **(author or {"name": self.bot_login,
                                              "email": f"{self.app_id}+{self.bot_login}@users.noreply.github.com"})}
        committer = {"date": author["date"], **(committer or author)}
        stamp = int(datetime.fromisoformat(author["date"].replace("Z", "+00:00")).timestamp())
        raw = (f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents)
               + f"author {author['name']} <{author['email']}> {stamp} +0000\n"
               + f"committer {committer['name']} <{committer['email']}> {stamp} +0000\n\n{message}").encode()
        sha = git_sha("commit", raw)
        self._objects[sha] = {"type": "commit", "tree": tree, "parents": list(parents), "message": message,
                              "author": author, "committer": committer}
        return sha

    def obj(self, sha: str, kind: str) -> dict:
        if (o := self._objects.get(sha)) is None or o["type"] != kind:
            raise ApiError(404)
        return o

    def commit_tree(self, sha: str) -> str:
        return self.obj(sha, "commit")["tree"]

    def blob_text(self, sha: str) -> str:
        return self.obj(sha, "blob")["content"].decode("utf-8", "replace")

    def flatten(self, tree_sha: str, prefix: str = "") -> dict[str, tuple[str, str, str]]:
        """path -> (mode, type, sha) for every non-tree entry below ``tree_sha``."""
        out: dict[str, tuple[str, str, str]] = {}
        for e in self.obj(tree_sha, "tree")["entries"]:
            if e["type"] == "tree":
                out |= self.flatten(e["sha"], f"{prefix}{e['path']}/")
            else:
                out[prefix + e["path"]] = (e["mode"], e["type"], e["sha"])
        return out

    def build_tree(self, flat: dict[str, tuple[str, str, str]]) -> str:
        groups: dict[str, dict[str, tuple[str, str, str]]] = {}
        entries = []
        for path, (mode, typ, sha) in flat.items():
            head, sep, rest = path.partition("/")
            if sep:
                groups.setdefault(head, {})[rest] = (mode, typ, sha)
            else:
                entries.append({"path": path, "mode": mode, "type": typ, "sha": sha})
        return self.put_tree(entries + [{"path": d, "mode": "040000", "type": "tree", "sha": self.build_tree(sub)}
                                        for d, sub in groups.items()])

    def lookup(self, tree: str, path: str) -> dict | None:
        """The tree entry at ``path`` ("" is the root tree itself)."""
        entry: dict | None = {"type": "tree", "sha": tree, "mode": "040000", "path": ""}
        for part in [p for p in path.split("/") if p]:
            if entry is None or entry["type"] != "tree":
                return None
            entry = next((e for e in self.obj(entry["sha"], "tree")["entries"] if e["path"] == part), None)
        return entry

    def history(self, sha: str) -> list[str]:
        """Commits reachable from ``sha``, children before parents (newest first), like ``git log``."""
        order, seen, stack = [], set(), [(sha, False)]
        while stack:
            s, done = stack.pop()
            if done:
                order.append(s)
            elif s not in seen and (o := self._objects.get(s)) is not None and o["type"] == "commit":
                seen.add(s)
                stack += [(s, True)] + [(p, False) for p in reversed(o["parents"])]
        return order[::-1]

    def ancestors(self, sha: str) -> set[str]:
        return set(self.history(sha))

    def merge_base(self, a: str, b: str) -> str:
        mine = self.ancestors(a)
        return next((s for s in self.history(b) if s in mine), a)

    def resolve(self, repo: Repo, ref: str) -> str | None:
        """Commit sha for a branch, tag, ``heads/x``, ``refs/...`` or (abbreviated) sha."""
        for cand in (ref, f"refs/{ref}", f"refs/heads/{ref}", f"refs/tags/{ref}"):
            if cand in repo.refs:
                return repo.refs[cand]
        if re.fullmatch(r"[0-9a-f]{7,40}", ref):
            hits = [s for s, o in self._objects.items() if s.startswith(ref) and o["type"] == "commit"]
            return hits[0] if len(hits) == 1 else None
        return None

    def branch_sha(self, repo: Repo, branch: str | None, create: bool = False) -> str:
        key = f"refs/heads/{branch or repo.data['default_branch']}"
        if key not in repo.refs:
            if not create:
                raise ApiError(404, "Branch not found")
            repo.refs[key] = repo.refs[f"refs/heads/{repo.data['default_branch']}"]
        return repo.refs[key]

    def git_commit_json(self, repo: Repo, sha: str) -> dict:
        c = self.obj(sha, "commit")
        return {"sha": sha, "node_id": node_id("C", sha), "url": f"{repo.api}/git/commits/{sha}",
                "html_url": f"{WEB}/{repo.full_name}/commit/{sha}", "author": c["author"],
                "committer": c["committer"], "message": c["message"],
                "tree": {"sha": c["tree"], "url": f"{repo.api}/git/trees/{c['tree']}"},
                "parents": [{"sha": p, "url": f"{repo.api}/git/commits/{p}",
                             "html_url": f"{WEB}/{repo.full_name}/commit/{p}"} for p in c["parents"]],
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None,
                                 "verified_at": None}}

    def ref_json(self, repo: Repo, ref: str) -> dict:
        sha = repo.refs[ref]
        return {"ref": ref, "node_id": node_id("REF", f"{repo.full_name}:{ref}"), "url": f"{repo.api}/git/{ref}",
                "object": {"sha": sha, "type": "commit", "url": f"{repo.api}/git/commits/{sha}"}}

    def tree_json(self, repo: Repo, sha: str, recursive: bool) -> dict:
        def walk(tsha: str, prefix: str) -> list[dict]:
            out = []
            for e in self.obj(tsha, "tree")["entries"]:
                o = self._objects.get(e["sha"], {})
                out.append({"path": prefix + e["path"], "mode": e["mode"], "type": e["type"], "sha": e["sha"],
                            **({"size": len(o["content"])} if o.get("type") == "blob" else {}),
                            "url": f"{repo.api}/git/{e['type']}s/{e['sha']}"})
                if recursive and e["type"] == "tree":
                    out += walk(e["sha"], f"{prefix}{e['path']}/")
            return out
        return {"sha": sha, "url": f"{repo.api}/git/trees/{sha}", "tree": walk(sha, ""), "truncated": False}
