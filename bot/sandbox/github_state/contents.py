"""Files and diffs in the sandbox GitHub's model: committing a file, reading one back, the contents
API's and the REST commit's shapes, and patches in GitHub's hunks-only form."""

from __future__ import annotations

import difflib
import re

from .base import EMPTY_TREE, WEB, Repo, b64_lines
from .git import GitState


def patch_stats(patch: str) -> tuple[int, int]:
    lines = patch.splitlines()
    return (sum(ln.startswith("+") and not ln.startswith("+++") for ln in lines),
            sum(ln.startswith("-") and not ln.startswith("---") for ln in lines))


def patch_status(patch: str) -> str:
    if patch.startswith("@@ -0,0 "):
        return "added"
    return "removed" if re.match(r"@@ -\d+(,\d+)? \+0,0 @@", patch) else "modified"


def _alike(old: str, new: str) -> float:
    """How much of the larger of two texts the other keeps (0..1), counted in bytes of whole matching lines."""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    kept = sum(len("".join(a[m.a:m.a + m.size])) for m in difflib.SequenceMatcher(None, a, b).get_matching_blocks())
    return kept / max(len(old), len(new), 1)


def make_patch(old: str, new: str) -> str:
    """A GitHub-style patch (hunks only, no file header)."""
    diff = list(difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=3))
    return "\n".join(diff[2:])  # the two file-header lines only: an added line may itself start with "++"


def apply_patch(old: str, patch: str) -> str:
    """Best-effort application of a hunks-only patch; falls back to the patch's new side."""
    src, pos = old.splitlines(keepends=True), 0
    out: list[str] = []
    try:
        for line in patch.splitlines():
            if m := re.match(r"@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@", line):
                start = int(m[1]) - (0 if m[2] == "0" else 1)
                if start < pos:
                    raise ValueError("overlapping hunks")
                out, pos = out + src[pos:start], start
            elif line.startswith(" ") or line == "":
                if src[pos].rstrip("\r\n") != line[1:]:
                    raise ValueError("context mismatch")
                out, pos = out + [src[pos]], pos + 1
            elif line.startswith("-"):
                pos += 1
            elif line.startswith("+"):
                out.append(line[1:] + "\n")
            elif line.startswith("\\") and out:
                out[-1] = out[-1].rstrip("\n")
        return "".join(out + src[pos:])
    except (ValueError, IndexError):
        return "".join(ln[1:] + "\n" for ln in patch.splitlines() if ln[:1] in ("+", " "))


class ContentsState(GitState):
    """Files on branches, diffs between commits, and their JSON shapes."""

    def set_file(self, full_name: str, path: str, content: str | bytes, *, ref: str | None = None,
                 message: str | None = None) -> str:
        """Commit ``content`` at ``path`` on branch ``ref`` (made from the default branch if new); returns the sha."""
        repo = self.repo(full_name)
        head = self.branch_sha(repo, ref, create=True)
        flat = self.flatten(self.commit_tree(head))
        data = content.encode() if isinstance(content, str) else content
        flat[path.strip("/")] = ("100644", "blob", self.put_blob(data))
        sha = self.put_commit(self.build_tree(flat), [head], message or f"Update {path}",
                              {"name": "Sandbox", "email": "sandbox@example.com"})
        repo.refs[f"refs/heads/{ref or repo.data['default_branch']}"] = sha
        return sha

    def move_file(self, full_name: str, path: str, to: str, content: str | None = None, *, ref: str | None = None,
                  message: str | None = None) -> str:
        """Commit ``git mv path to`` on branch ``ref`` (default branch), with ``content`` as the moved file's new
        text if given (a rename with an edit); returns the sha."""
        repo = self.repo(full_name)
        head = self.branch_sha(repo, ref)
        flat = self.flatten(self.commit_tree(head))
        entry = flat.pop(path.strip("/"))
        flat[to.strip("/")] = entry if content is None else ("100644", "blob", self.put_blob(content.encode()))
        sha = self.put_commit(self.build_tree(flat), [head], message or f"Rename {path} to {to}",
                              {"name": "Sandbox", "email": "sandbox@example.com"})
        repo.refs[f"refs/heads/{ref or repo.data['default_branch']}"] = sha
        return sha

    def file_content(self, full_name: str, path: str, *, ref: str | None = None) -> str | None:
        """Text of ``path`` at ``ref`` (default branch), or None; for assertions."""
        repo = self.repo(full_name)
        sha = self.resolve(repo, ref or repo.data["default_branch"])
        entry = self.lookup(self.commit_tree(sha), path) if sha else None
        return self.blob_text(entry["sha"]) if entry and entry["type"] == "blob" else None

    def diff_files(self, repo: Repo, base: str, head: str) -> list[dict]:
        """The files changed from ``base`` to ``head`` as GitHub lists them, renames included (:meth:`_renames`)."""
        old, new = self.flatten(self.commit_tree(base)), self.flatten(self.commit_tree(head))

        def text(e: tuple[str, str, str] | None) -> str:
            return self.blob_text(e[2]) if e and e[1] == "blob" else ""

        moved = self._renames({p: text(e) for p, e in old.items() if p not in new and e[1] == "blob"},
                              {p: text(e) for p, e in new.items() if p not in old and e[1] == "blob"})
        was = {now: before for before, now in moved.items()}
        files = []
        for path in sorted((old.keys() | new.keys()) - moved.keys()):
            o, n = old.get(was.get(path, path)), new.get(path)
            entry = n or o
            if path in was and n is not None:  # GitHub sends no patch for a rename that changed nothing
                patch = make_patch(text(o), text(n)) if text(o) != text(n) else None
                files.append(self._file_entry(repo, path, "renamed", patch, n[2], head)
                             | {"previous_filename": was[path]})
                continue
            if o == n or entry is None:  # unchanged (entry is None only when both sides lack the path)
                continue
            status = "added" if o is None else "removed" if n is None else "modified"
            files.append(self._file_entry(repo, path, status, make_patch(text(o), text(n)), entry[2], head))
        return files

    @staticmethod
    def _renames(gone: dict[str, str], came: dict[str, str]) -> dict[str, str]:
        """Which removed file became which added one (old path → new), as git's rename detection pairs them: the
        same content first, then the most alike at least half alike (git's default ``-M50%``: the bytes kept of
        the larger side; lines stand in for git's chunks). Empty files are never renames (git skips them)."""
        out: dict[str, str] = {}
        left = {p: t for p, t in came.items() if t}
        for before, t in sorted(gone.items()):
            if t and (now := next((p for p in sorted(left) if left[p] == t), None)):
                out[before] = now
                del left[now]
        scores = sorted(((_alike(t, left[now]), before, now) for before, t in gone.items()
                         if t and before not in out for now in left), key=lambda x: (-x[0], x[1], x[2]))
        for score, before, now in scores:
            if score >= 0.5 and before not in out and now in left:
                out[before] = now
                del left[now]
        return out

    def _file_entry(self, repo: Repo, path: str, status: str, patch: str | None, sha: str | None, ref: str) -> dict:
        adds, dels = patch_stats(patch or "")
        entry = {"sha": sha, "filename": path, "status": status, "additions": adds, "deletions": dels,
                 "changes": adds + dels, "blob_url": f"{WEB}/{repo.full_name}/blob/{ref}/{path}",
                 "raw_url": f"{WEB}/{repo.full_name}/raw/{ref}/{path}",
                 "contents_url": f"{repo.api}/contents/{path}?ref={ref}"}
        return entry if patch is None else entry | {"patch": patch}

    def commit_json(self, repo: Repo, sha: str, with_files: bool = False) -> dict:
        """The REST (not git-data) commit shape; ``files``/``stats`` are against the first parent."""
        g = self.git_commit_json(repo, sha)
        d = {"sha": sha, "node_id": g["node_id"], "url": f"{repo.api}/commits/{sha}", "html_url": g["html_url"],
             "comments_url": f"{repo.api}/commits/{sha}/comments", "author": None, "committer": None,
             "commit": {k: g[k] for k in ("author", "committer", "message", "tree", "verification")}
             | {"url": g["url"], "comment_count": 0},
             "parents": [{"sha": p["sha"], "url": f"{repo.api}/commits/{p['sha']}", "html_url": p["html_url"]}
                         for p in g["parents"]]}
        if with_files:
            parents = self.obj(sha, "commit")["parents"]
            d["files"] = self.diff_files(repo, parents[0] if parents else self.put_commit(EMPTY_TREE, [], ""), sha)
            adds, dels = sum(f["additions"] for f in d["files"]), sum(f["deletions"] for f in d["files"])
            d["stats"] = {"total": adds + dels, "additions": adds, "deletions": dels}
        return d

    def content_json(self, repo: Repo, path: str, e: dict, ref: str, full: bool) -> dict:
        """A contents-API entry; ``full`` adds the base64 content (single-file answers)."""
        kind = {"tree": "dir", "commit": "submodule"}.get(e["type"], "symlink" if e["mode"] == "120000" else "file")
        data = self._objects.get(e["sha"], {}).get("content", b"")
        d = {"type": kind, "size": len(data), "name": path.rsplit("/", 1)[-1], "path": path, "sha": e["sha"],
             "url": f"{repo.api}/contents/{path}?ref={ref}",
             "git_url": f"{repo.api}/git/{'trees' if kind == 'dir' else 'blobs'}/{e['sha']}",
             "html_url": f"{WEB}/{repo.full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{path}",
             "download_url": None if kind == "dir" else
             f"https://raw.githubusercontent.com/{repo.full_name}/{ref}/{path}"}
        d["_links"] = {"self": d["url"], "git": d["git_url"], "html": d["html_url"]}
        return d | {"encoding": "base64", "content": b64_lines(data)} if full else d
