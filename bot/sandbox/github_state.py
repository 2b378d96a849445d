"""In-memory model behind the sandbox GitHub (``github.py`` is the HTTP side).

Kept apart from the server so seeding, assertions and handlers share one model.
Objects are stored in GitHub's JSON shapes; keys starting with ``__`` are internal
and stripped from responses.  URLs use the ``API`` placeholder origin, replaced by
the sandbox's real origin when a response is written, so a bot that follows
``comments_url`` & co. stays inside the sandbox.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import re
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

API = "http://api.sandbox.invalid"
WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
#: GitHub's collaborator-permission endpoint folds the fine roles into the legacy levels.
PERMISSION_OF_ROLE = {"admin": "admin", "maintain": "write", "write": "write",
                      "triage": "read", "read": "read", "none": "none"}
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CONCLUSIONS = ("action_required", "cancelled", "timed_out", "failure", "neutral", "skipped", "stale", "success")
ANNOTATION_KEYS = ("path", "start_line", "end_line", "start_column", "end_column", "annotation_level", "title",
                   "message", "raw_details")


class ApiError(Exception):
    """Raised anywhere in request handling to answer with a GitHub-style error body."""

    def __init__(self, status: int, message: str = "Not Found", errors: list | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors

    def body(self) -> dict:
        body: dict[str, Any] = {"message": self.message, "documentation_url": DOCS}
        return body if self.errors is None else body | {"errors": self.errors}


def invalid(resource: str, field_name: str, code: str = "missing_field") -> ApiError:
    """422 Validation Failed for one field, worded as GitHub does."""
    return ApiError(422, "Validation Failed", [{"resource": resource, "code": code, "field": field_name}])


def custom_invalid(resource: str, message: str) -> ApiError:
    return ApiError(422, "Validation Failed", [{"resource": resource, "code": "custom", "message": message}])


@dataclass
class RecordedRequest:
    """One request as the sandbox saw it (the Authorization value is never kept)."""
    method: str
    path: str
    query: dict[str, str]
    json: Any
    status: int = 0
    auth_kind: str | None = None  # "jwt" | "token" | None


@dataclass
class Write:
    """A successful state change, for asserting what the bot did."""
    kind: str
    repo: str | None
    number: int | None
    data: dict


@dataclass
class Repo:
    data: dict
    installation_id: int | None
    issues: dict[int, dict] = field(default_factory=dict)  # PRs too: one number space
    comments: dict[int, dict] = field(default_factory=dict)
    labels: dict[str, dict] = field(default_factory=dict)  # lower-cased name -> label
    roles: dict[str, str] = field(default_factory=dict)  # lower-cased login -> role
    refs: dict[str, str] = field(default_factory=dict)  # "refs/heads/main" -> commit sha
    check_runs: dict[int, dict] = field(default_factory=dict)
    check_suites: dict[int, dict] = field(default_factory=dict)
    runs: dict[int, dict] = field(default_factory=dict)
    jobs: dict[int, dict] = field(default_factory=dict)
    reactions: dict[tuple[str, int], list[dict]] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return self.data["full_name"]

    @property
    def owner(self) -> str:
        return self.data["owner"]["login"]

    @property
    def api(self) -> str:
        return f"{API}/repos/{self.full_name}"


#: What GitHub's full repository object carries besides names and urls; the sandbox does not model these.
REPO_DEFAULTS = {"homepage": None, "language": None, "license": None, "mirror_url": None, "size": 0, "forks": 0,
                 "forks_count": 0, "stargazers_count": 0, "watchers": 0, "watchers_count": 0, "network_count": 0,
                 "subscribers_count": 0, "has_projects": False, "has_wiki": False, "has_pages": False,
                 "has_discussions": False, "has_downloads": True, "is_template": False,
                 "allow_forking": True}


def user_urls(url: str) -> dict:
    """The url fields of GitHub's user object (RFC 6570 templates where GitHub uses them)."""
    return {"followers_url": f"{url}/followers", "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}", "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions", "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos", "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events"}


def repo_urls(full_name: str) -> dict:
    """The url fields of GitHub's repository object, as GitHub spells them."""
    api = f"{API}/repos/{full_name}"
    templates = {"assignees": "/assignees{/user}", "collaborators": "/collaborators{/collaborator}",
                 "comments": "/comments{/number}", "commits": "/commits{/sha}", "compare": "/compare/{base}...{head}",
                 "contents": "/contents/{+path}", "git_commits": "/git/commits{/sha}", "git_refs": "/git/refs{/sha}",
                 "git_tags": "/git/tags{/sha}", "issue_comment": "/issues/comments{/number}",
                 "issue_events": "/issues/events{/number}", "issues": "/issues{/number}", "keys": "/keys{/key_id}",
                 "labels": "/labels{/name}", "milestones": "/milestones{/number}",
                 "notifications": "/notifications{?since,all,participating}", "pulls": "/pulls{/number}",
                 "releases": "/releases{/id}", "statuses": "/statuses/{sha}", "trees": "/git/trees{/sha}",
                 "blobs": "/git/blobs{/sha}", "branches": "/branches{/branch}"}
    urls = {f"{k}_url": api + t for k, t in templates.items()}
    urls |= {f"{k}_url": f"{api}/{k}" for k in ("contributors", "deployments", "downloads", "events", "forks",
                                                 "hooks", "languages", "merges", "stargazers", "subscribers",
                                                 "subscription", "tags", "teams")}
    return urls | {"archive_url": api + "/{archive_format}{/ref}",
                   "git_url": f"git://github.com/{full_name}.git", "ssh_url": f"git@github.com:{full_name}.git",
                   "clone_url": f"{WEB}/{full_name}.git", "svn_url": f"{WEB}/{full_name}"}


def iso(t: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_id(prefix: str, ident: Any) -> str:
    return f"{prefix}_" + base64.b64encode(str(ident).encode()).decode().rstrip("=")


def b64_lines(data: bytes) -> str:
    """Base64 wrapped at 60 columns with trailing newlines, as the contents API does."""
    s = base64.b64encode(data).decode()
    return "".join(s[i:i + 60] + "\n" for i in range(0, len(s), 60))


def public(obj: Any) -> Any:
    """Deep copy without internal ``__`` keys."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("__")}
    return [public(v) for v in obj] if isinstance(obj, list) else obj


def git_sha(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


def patch_stats(patch: str) -> tuple[int, int]:
    lines = patch.splitlines()
    return (sum(ln.startswith("+") and not ln.startswith("+++") for ln in lines),
            sum(ln.startswith("-") and not ln.startswith("---") for ln in lines))


def patch_status(patch: str) -> str:
    if patch.startswith("@@ -0,0 "):
        return "added"
    return "removed" if re.match(r"@@ -\d+(,\d+)? \+0,0 @@", patch) else "modified"


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


def _qual_ok(key: str, v: str, issue: dict, labels: set[str], is_pr: bool) -> bool:
    """Whether ``issue`` satisfies one ``key:v`` search qualifier; unknown qualifiers match."""
    if key == "is":
        return {"issue": not is_pr, "pr": is_pr, "open": issue["state"] == "open",
                "closed": issue["state"] == "closed"}.get(v, True)
    if key == "type":
        return (v == "pr") == is_pr
    if key == "state":
        return issue["state"] == v
    if key == "label":
        return bool(labels & {x.strip() for x in v.split(",")})
    if key == "author":
        return issue["user"]["login"].lower() == v
    if key == "no":
        return not labels if v == "label" else True
    return True


class SandboxState:
    """Seeding, lookups and model operations; no HTTP here."""

    def __init__(self, *, app_id: int = 1, bot_login: str = "triage-lead[bot]") -> None:
        self.app_id, self.bot_login = app_id, bot_login
        self.writes: list[Write] = []
        self._last_id = 1000
        self._users: dict[str, dict] = {}
        self._installations: dict[int, dict] = {}
        self._repos: dict[str, Repo] = {}
        self._objects: dict[str, dict] = {EMPTY_TREE: {"type": "tree", "entries": []}}  # shared, like a fork network
        self._deliveries: dict[int, dict] = {}
        self._manifests: dict[str, dict] = {}
        slug = bot_login.removesuffix("[bot]")
        self.app_info: dict[str, Any] = {"id": app_id, "slug": slug, "node_id": node_id("A", app_id), "name": slug,
                         "description": "", "external_url": f"{WEB}/apps/{slug}",
                         "owner": self.user("octo-org", "Organization"), "html_url": f"{WEB}/apps/{slug}",
                         "created_at": iso(), "updated_at": iso(), "events": [],
                         "permissions": {"issues": "write", "pull_requests": "write", "checks": "write",
                                         "contents": "write", "actions": "read", "metadata": "read"}}
        self.user(bot_login, "Bot")

    # ---- ids, users, lookups -------------------------------------------------
    def _new_id(self, explicit: int | None = None) -> int:
        """Fresh ids never collide with ids taken from seeded payloads."""
        self._last_id = max(self._last_id + (explicit is None), int(explicit or 0))
        return int(explicit) if explicit is not None else self._last_id

    def user(self, login: str, type: str | None = None) -> dict:
        """The user object for ``login`` (created on first sight, with a stable id)."""
        if (u := self._users.get(login.lower())) is None:
            uid = self._new_id()
            u = self._users[login.lower()] = {
                "login": login, "id": uid, "node_id": node_id("U", uid), "url": f"{API}/users/{login}",
                "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4", "html_url": f"{WEB}/{login}",
                "type": type or ("Bot" if login.endswith("[bot]") else "User"), "site_admin": False,
                "gravatar_id": ""} | user_urls(f"{API}/users/{login}")
        return u

    def repo(self, full_name: str) -> Repo:
        if (repo := self._repos.get(full_name.lower())) is None:
            raise ApiError(404)
        return repo

    def _write(self, kind: str, repo: Repo | None, number: int | None, data: dict) -> None:
        self.writes.append(Write(kind, repo.full_name if repo else None, number, public(data)))

    def get_issue(self, repo: Repo, number: int, pull: bool = False) -> dict:
        if (issue := repo.issues.get(number)) is None or (pull and "__pull" not in issue):
            raise ApiError(404)
        return issue

    def _assoc(self, repo: Repo, login: str) -> str:
        if login.lower() == repo.owner.lower():
            return "OWNER"
        return "COLLABORATOR" if repo.roles.get(login.lower(), "none") != "none" else "NONE"

    # ---- repos, issues, comments -----------------------------------------------
    def add_installation(self, installation_id: int, account_login: str, *,
                         account_type: str = "Organization", permissions: dict | None = None) -> dict:
        """Register an installation; repos owned by ``account_login`` belong to it unless told otherwise."""
        account = self.user(account_login, account_type)
        inst = self._installations[installation_id] = {
            "id": self._new_id(installation_id), "account": account, "app_id": self.app_id,
            "app_slug": self.app_info["slug"], "target_type": account["type"], "repository_selection": "all",
            "access_tokens_url": f"{API}/app/installations/{installation_id}/access_tokens",
            "html_url": f"{WEB}/settings/installations/{installation_id}",
            "permissions": permissions or dict(self.app_info["permissions"]), "events": [],
            "created_at": iso(), "updated_at": iso(), "suspended_at": None}
        return public(inst)

    def add_repo(self, full_name: str, *, installation_id: int | None = None, default_branch: str = "main",
                 private: bool = False, fork_of: str | None = None, id: int | None = None) -> dict:
        """Create a repo with an empty initial commit on ``default_branch`` (idempotent)."""
        if (existing := self._repos.get(full_name.lower())) is not None:
            if installation_id is not None:
                existing.installation_id = installation_id
            return self.repo_json(existing)
        owner, name = full_name.split("/", 1)
        rid = self._new_id(id)
        data = {"id": rid, "node_id": node_id("R", rid), "name": name, "full_name": full_name, "private": private,
                "owner": self.user(owner), "html_url": f"{WEB}/{full_name}", "description": None,
                "fork": fork_of is not None, "url": f"{API}/repos/{full_name}", "default_branch": default_branch,
                "visibility": "private" if private else "public", "archived": False, "disabled": False,
                "has_issues": True, "topics": [], "created_at": iso(), "updated_at": iso(), "pushed_at": iso(),
                **repo_urls(full_name), **REPO_DEFAULTS}
        repo = self._repos[full_name.lower()] = Repo(data, installation_id)
        if fork_of:
            parent = self._repos.get(fork_of.lower()) or self.repo(self.add_repo(fork_of)["full_name"])
            data["parent"] = data["source"] = self.repo_json(parent, brief=True)
            repo.refs.update({k: v for k, v in parent.refs.items() if k.startswith("refs/heads/")})
        else:
            repo.refs[f"refs/heads/{default_branch}"] = self.put_commit(EMPTY_TREE, [], "Initial commit")
        return self.repo_json(repo)

    def repo_json(self, repo: Repo, brief: bool = False) -> dict:
        d = public(repo.data)
        if not brief:
            d["open_issues_count"] = d["open_issues"] = sum(i["state"] == "open" for i in repo.issues.values())
        return d

    def label(self, repo: Repo, name: str, color: str = "ededed", description: str | None = None) -> dict:
        """The repo label ``name``, created if missing (GitHub does so when labelling issues)."""
        if (lab := repo.labels.get(name.lower())) is None:
            lid = self._new_id()
            lab = repo.labels[name.lower()] = {"id": lid, "node_id": node_id("LA", lid), "name": name,
                                               "url": f"{repo.api}/labels/{name}", "color": color,
                                               "default": False, "description": description}
        return lab

    def add_issue(self, full_name: str, *, title: str, body: str = "", user: str = "octocat",
                  labels: Iterable[str] = (), number: int | None = None, user_type: str = "User",
                  state: str = "open", assignees: Iterable[str] = ()) -> dict:
        repo = self.repo(full_name)
        return self.issue_json(repo, self._make_issue(repo, title=title, body=body, user=user, user_type=user_type,
                                                      labels=labels, number=number, state=state, assignees=assignees))

    def _make_issue(self, repo: Repo, *, title: str, body: str | None, user: str, user_type: str | None = None,
                    labels: Iterable[str] = (), number: int | None = None, state: str = "open",
                    assignees: Iterable[str] = (), id: int | None = None) -> dict:
        n = number if number is not None else max(repo.issues, default=0) + 1
        iid, now, url = self._new_id(id), iso(), f"{repo.api}/issues/{n}"
        people = [self.user(a) for a in assignees]
        repo.issues[n] = {
            "id": iid, "node_id": node_id("I", iid), "url": url, "repository_url": repo.api,
            "labels_url": url + "/labels{/name}", "comments_url": url + "/comments", "events_url": url + "/events",
            "html_url": f"{WEB}/{repo.full_name}/issues/{n}", "number": n, "title": title, "body": body,
            "user": self.user(user, user_type), "labels": [self.label(repo, name) for name in labels], "state": state,
            "state_reason": None, "locked": False, "assignee": people[0] if people else None, "assignees": people,
            "milestone": None, "comments": 0, "created_at": now, "updated_at": now,
            "closed_at": now if state == "closed" else None, "author_association": self._assoc(repo, user)}
        return repo.issues[n]

    def issue_json(self, repo: Repo, issue: dict) -> dict:
        d = public(issue)
        d["comments"] = sum(c["__number"] == issue["number"] for c in repo.comments.values())
        d["reactions"] = self.reaction_summary(repo, "issue", issue["number"], issue["url"])
        return d

    def add_comment(self, full_name: str, number: int, body: str, *, user: str = "octocat",
                    user_type: str = "User", id: int | None = None) -> dict:
        repo = self.repo(full_name)
        comment = self._make_comment(repo, self.get_issue(repo, number), body, user, user_type, id)
        return self.comment_json(repo, comment)

    def _make_comment(self, repo: Repo, issue: dict, body: str, user: str, user_type: str | None = None,
                      id: int | None = None) -> dict:
        cid, now = self._new_id(id), iso()
        issue["updated_at"] = now
        repo.comments[cid] = {
            "id": cid, "node_id": node_id("IC", cid), "url": f"{repo.api}/issues/comments/{cid}",
            "html_url": f"{issue['html_url']}#issuecomment-{cid}", "issue_url": issue["url"], "body": body,
            "user": self.user(user, user_type), "created_at": now, "updated_at": now,
            "author_association": self._assoc(repo, user), "__number": issue["number"]}
        return repo.comments[cid]

    def comment_json(self, repo: Repo, comment: dict) -> dict:
        return public(comment) | {"reactions": self.reaction_summary(repo, "comment", comment["id"], comment["url"])}

    def react(self, repo: Repo, subject: str, key: int, content: str, login: str) -> tuple[dict, bool]:
        """Add a reaction unless this user already left it; returns (reaction, created)."""
        if content not in REACTIONS:
            raise invalid("Reaction", "content", "invalid")
        existing = repo.reactions.setdefault((subject, key), [])
        for r in existing:
            if r["content"] == content and r["user"]["login"].lower() == login.lower():
                return r, False
        rid = self._new_id()
        existing.append({"id": rid, "node_id": node_id("REA", rid), "user": self.user(login), "content": content,
                         "created_at": iso()})
        return existing[-1], True

    def reaction_summary(self, repo: Repo, subject: str, key: int, url: str) -> dict:
        rs = repo.reactions.get((subject, key), [])
        return {"url": url + "/reactions", "total_count": len(rs)} | {
            c: sum(r["content"] == c for r in rs) for c in REACTIONS}

    def set_permission(self, full_name: str, login: str, permission: str) -> None:
        if permission not in PERMISSION_OF_ROLE:
            raise ValueError(f"unknown role {permission!r}")
        self.user(login)
        self.repo(full_name).roles[login.lower()] = permission

    def permission_json(self, repo: Repo, login: str) -> dict:
        """Explicit role, else admin for the owner, else read (public repo) / none (private repo)."""
        role = repo.roles.get(login.lower())
        if role is None:
            role = "admin" if login.lower() == repo.owner.lower() else ("none" if repo.data["private"] else "read")
        return {"permission": PERMISSION_OF_ROLE[role], "role_name": role,
                "user": self.user(login) | {"role_name": role}}

    # ---- pull requests -----------------------------------------------------------
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

    def _file_entry(self, repo: Repo, path: str, status: str, patch: str, sha: str | None, ref: str) -> dict:
        adds, dels = patch_stats(patch)
        return {"sha": sha, "filename": path, "status": status, "additions": adds, "deletions": dels,
                "changes": adds + dels, "blob_url": f"{WEB}/{repo.full_name}/blob/{ref}/{path}",
                "raw_url": f"{WEB}/{repo.full_name}/raw/{ref}/{path}",
                "contents_url": f"{repo.api}/contents/{path}?ref={ref}", "patch": patch}

    # ---- git object store --------------------------------------------------------
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

    def file_content(self, full_name: str, path: str, *, ref: str | None = None) -> str | None:
        """Text of ``path`` at ``ref`` (default branch), or None; for assertions."""
        repo = self.repo(full_name)
        sha = self.resolve(repo, ref or repo.data["default_branch"])
        entry = self.lookup(self.commit_tree(sha), path) if sha else None
        return self.blob_text(entry["sha"]) if entry and entry["type"] == "blob" else None

    def diff_files(self, repo: Repo, base: str, head: str) -> list[dict]:
        old, new = self.flatten(self.commit_tree(base)), self.flatten(self.commit_tree(head))

        def text(e: tuple[str, str, str] | None) -> str:
            return self.blob_text(e[2]) if e and e[1] == "blob" else ""

        files = []
        for path in sorted(old.keys() | new.keys()):
            o, n = old.get(path), new.get(path)
            entry = n or o
            if o == n or entry is None:  # unchanged (entry is None only when both sides lack the path)
                continue
            status = "added" if o is None else "removed" if n is None else "modified"
            files.append(self._file_entry(repo, path, status, make_patch(text(o), text(n)), entry[2], head))
        return files

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

    # ---- checks & Actions ---------------------------------------------------------
    def _suite(self, repo: Repo, head_sha: str, suite_id: int | None = None, head_branch: str | None = None) -> dict:
        """The given suite, else this app's suite for ``head_sha`` (created on demand)."""
        if suite_id in repo.check_suites:
            return repo.check_suites[suite_id]
        if suite_id is None and (s := next((s for s in repo.check_suites.values() if s["head_sha"] == head_sha), None)):
            return s
        sid = self._new_id(suite_id)
        repo.check_suites[sid] = {
            "id": sid, "node_id": node_id("CS", sid), "head_branch": head_branch, "head_sha": head_sha,
            "status": "queued", "conclusion": None, "url": f"{repo.api}/check-suites/{sid}", "before": None,
            "after": head_sha, "pull_requests": [], "app": self.app_info, "created_at": iso(), "updated_at": iso(),
            "check_runs_url": f"{repo.api}/check-suites/{sid}/check-runs", "head_commit": {"id": head_sha}}
        return repo.check_suites[sid]

    def suite_json(self, repo: Repo, suite: dict) -> dict:
        """Status/conclusion derived from the suite's runs, worst conclusion first, as GitHub does."""
        d = public(suite) | {"repository": self.repo_json(repo, brief=True)}
        runs = [r for r in repo.check_runs.values() if r["check_suite"]["id"] == suite["id"]]
        d["latest_check_runs_count"] = len(runs)
        if runs:
            done = all(r["status"] == "completed" for r in runs)
            d["status"] = "completed" if done else "in_progress"
            d["conclusion"] = min((r["conclusion"] or "success" for r in runs), key=CONCLUSIONS.index) if done else None
        return d

    def make_check_run(self, repo: Repo, data: dict, *, id: int | None = None, suite_id: int | None = None,
                       head_branch: str | None = None) -> dict:
        """Create a check run from a POST body (name, head_sha, status, conclusion, output...)."""
        for f in ("name", "head_sha"):
            if not data.get(f):
                raise invalid("CheckRun", f)
        rid, suite = self._new_id(id), self._suite(repo, data["head_sha"], suite_id, head_branch)
        run = repo.check_runs[rid] = {
            "id": rid, "node_id": node_id("CR", rid), "head_sha": data["head_sha"], "name": data["name"],
            "external_id": "", "url": f"{repo.api}/check-runs/{rid}", "html_url": f"{WEB}/{repo.full_name}/runs/{rid}",
            "details_url": None, "status": "queued", "conclusion": None, "started_at": iso(), "completed_at": None,
            "check_suite": {"id": suite["id"]}, "app": data.get("app") or self.app_info, "pull_requests": [],
            "__annotations": [],
            "output": {"title": None, "summary": None, "text": None, "annotations_count": 0,
                       "annotations_url": f"{repo.api}/check-runs/{rid}/annotations"}}
        self.update_check_run(repo, run, data | {"status": data.get("status") or "queued"})
        return run

    def update_check_run(self, repo: Repo, run: dict, data: dict) -> None:
        if data.get("status") not in (None, *CHECK_STATUSES):
            raise invalid("CheckRun", "status", "invalid")
        if data.get("conclusion") not in (None, *CONCLUSIONS):
            raise invalid("CheckRun", "conclusion", "invalid")
        if data.get("status") == "completed" and not (data.get("conclusion") or run["conclusion"]):
            raise custom_invalid("CheckRun", "Conclusion must be provided when status is completed")
        run.update({k: data[k] for k in ("name", "details_url", "external_id", "status", "started_at") if k in data})
        if data.get("conclusion"):
            run["conclusion"], run["status"] = data["conclusion"], "completed"
        if run["status"] == "completed":
            run["completed_at"] = data.get("completed_at") or run["completed_at"] or iso()
        out = data.get("output") or {}
        run["output"].update({k: out[k] for k in ("title", "summary", "text") if k in out})
        run["__annotations"] += [{k: a.get(k) for k in ANNOTATION_KEYS} for a in out.get("annotations", [])]
        run["output"]["annotations_count"] = len(run["__annotations"])

    def add_check_run(self, full_name: str, *, name: str = "ci", head_sha: str | None = None,
                      status: str = "completed", conclusion: str | None = "failure", output: dict | None = None,
                      check_suite_id: int | None = None, id: int | None = None, head_branch: str | None = None,
                      details_url: str | None = None, external_id: str = "", app: dict | None = None) -> dict:
        """A check run as CI (or, with ``app``, another GitHub App) would create it."""
        repo = self.repo(full_name)
        data = {"name": name, "head_sha": head_sha or self.branch_sha(repo, None), "status": status,
                "conclusion": conclusion if status == "completed" else None, "output": output or {},
                "details_url": details_url, "external_id": external_id, "app": app}
        return public(self.make_check_run(repo, data, id=id, suite_id=check_suite_id, head_branch=head_branch))

    def add_workflow_run(self, full_name: str, *, name: str = "CI", head_sha: str | None = None,
                         head_branch: str | None = None, status: str = "completed", conclusion: str | None = "failure",
                         event: str = "push", jobs: list[dict] | None = None, id: int | None = None,
                         check_suite_id: int | None = None, pull_requests: Iterable[int] = (),
                         path: str = ".github/workflows/ci.yml") -> dict:
        """A workflow run; each job ({name, conclusion, log, status?, steps?, id?}) is also a check run with the
        same id, as on GitHub, so a check_run event's id works as a job id."""
        repo = self.repo(full_name)
        head_branch = head_branch or repo.data["default_branch"]
        head_sha = head_sha or self.resolve(repo, head_branch) or self.branch_sha(repo, None)
        rid, suite = self._new_id(id), self._suite(repo, head_sha, check_suite_id, head_branch)
        url = f"{repo.api}/actions/runs/{rid}"
        run = repo.runs[rid] = {
            "id": rid, "name": name, "node_id": node_id("WFR", rid), "head_branch": head_branch, "head_sha": head_sha,
            "path": path, "display_title": name, "run_number": len(repo.runs) + 1, "run_attempt": 1, "event": event,
            "status": status, "conclusion": conclusion, "check_suite_id": suite["id"], "url": url,
            "html_url": f"{WEB}/{repo.full_name}/actions/runs/{rid}", "created_at": iso(), "updated_at": iso(),
            "pull_requests": [{"number": n, "url": f"{repo.api}/pulls/{n}"} for n in pull_requests],
            "jobs_url": url + "/jobs", "logs_url": url + "/logs", "actor": self.user("octocat"),
            "head_commit": {"id": head_sha}, "repository": self.repo_json(repo, brief=True)}
        for j in jobs or []:
            self._add_job(repo, run, j)
        return public(run)

    def _add_job(self, repo: Repo, run: dict, j: dict) -> dict:
        status = j.get("status") or "completed"
        conc = (j.get("conclusion") or "success") if status == "completed" else None
        cr = self.make_check_run(repo, {"name": j["name"], "head_sha": run["head_sha"], "status": status,
                                        "conclusion": conc}, id=j.get("id"), suite_id=run["check_suite_id"])
        steps = j.get("steps") or [
            {"name": "Set up job", "status": "completed", "conclusion": "success", "number": 1},
            {"name": f"Run {j['name']}", "status": status, "conclusion": conc, "number": 2}]
        repo.jobs[cr["id"]] = {
            "id": cr["id"], "run_id": run["id"], "run_url": run["url"], "node_id": node_id("CJ", cr["id"]),
            "head_sha": run["head_sha"], "head_branch": run["head_branch"],
            "url": f"{repo.api}/actions/jobs/{cr['id']}",
            "html_url": f"{run['html_url']}/job/{cr['id']}", "check_run_url": cr["url"], "status": status,
            "conclusion": conc, "started_at": iso(), "completed_at": iso() if conc else None, "name": j["name"],
            "steps": steps, "labels": ["ubuntu-latest"], "workflow_name": run["name"], "__log": j.get("log", ""),
            "created_at": run["created_at"], "runner_id": 1, "runner_name": "GitHub Actions 1", "runner_group_id": 2,
            "runner_group_name": "GitHub Actions"}
        return repo.jobs[cr["id"]]

    # ---- app-level -------------------------------------------------------------------
    def add_hook_delivery(self, *, event: str = "issues", action: str | None = "opened", status_code: int = 200,
                          guid: str | None = None, installation_id: int | None = None,
                          repository_id: int | None = None, redelivery: bool = False, id: int | None = None,
                          delivered_at: str | None = None) -> dict:
        did = self._new_id(id)
        self._deliveries[did] = {
            "id": did, "guid": guid or f"{did:08x}-0000-4000-8000-{did:012x}", "delivered_at": delivered_at or iso(),
            "redelivery": redelivery, "duration": 0.2, "status_code": status_code,
            "status": "OK" if 200 <= status_code < 300 else f"Invalid HTTP Response: {status_code}",
            "event": event, "action": action, "installation_id": installation_id, "repository_id": repository_id}
        return dict(self._deliveries[did])

    def add_manifest_code(self, code: str, *, id: int | None = None, slug: str | None = None, owner: str = "octo-org",
                          pem: str | None = None, webhook_secret: str = "sandbox-webhook-secret",
                          client_id: str = "Iv1.sandbox", client_secret: str = "sandbox-client-secret") -> dict:
        """Register a one-time manifest code; its conversion answers with these credentials (``pem`` None: a
        fresh key, which the sandbox then trusts for JWTs if ``id`` is its app id)."""
        slug = slug or self.app_info["slug"]
        self._manifests[code] = {
            "id": id or self.app_id, "slug": slug, "node_id": node_id("A", id or self.app_id), "name": slug,
            "owner": self.user(owner, "Organization"), "client_id": client_id, "client_secret": client_secret,
            "webhook_secret": webhook_secret, "pem": pem, "html_url": f"{WEB}/apps/{slug}", "created_at": iso(),
            "description": "", "external_url": f"{WEB}/apps/{slug}",
            "updated_at": iso(), "permissions": self.app_info["permissions"], "events": []}
        return self._manifests[code]

    # ---- webhook payload seeding ---------------------------------------------------
    def seed_from_payload(self, payload: dict) -> None:
        """Create whatever a webhook payload names so the bot's follow-up reads succeed."""
        p = payload or {}
        repo_p, inst_p = p.get("repository") or {}, p.get("installation") or {}
        owner = (repo_p.get("owner") or {}).get("login", "octo-org")
        full_name = repo_p.get("full_name") or (f"{owner}/{repo_p['name']}" if repo_p.get("name") else None)
        if inst_p.get("id") is not None and inst_p["id"] not in self._installations:
            account = inst_p.get("account") or repo_p.get("owner") or {}
            self.add_installation(inst_p["id"], account.get("login") or (full_name or owner).split("/")[0],
                                  account_type=account.get("type", "Organization"))
        if (p.get("sender") or {}).get("login"):
            self.user(p["sender"]["login"], p["sender"].get("type"))
        if not full_name:
            return
        self.add_repo(full_name, installation_id=inst_p.get("id"), default_branch=repo_p.get("default_branch", "main"),
                      private=bool(repo_p.get("private", False)), id=repo_p.get("id"))
        repo = self.repo(full_name)
        if isinstance(pr := p.get("pull_request"), dict):
            self._seed_pull(repo, pr)
        if isinstance(p.get("issue"), dict):
            self._seed_issue(repo, p["issue"])
        number = (p.get("issue") or pr or {}).get("number")
        if isinstance(c := p.get("comment"), dict) and number in repo.issues and c.get("id") not in repo.comments:
            if "diff_hunk" not in c:  # review comments are not issue comments
                u = c.get("user") or {}
                self._make_comment(repo, repo.issues[number], c.get("body") or "", u.get("login", "octocat"),
                                   u.get("type"), c.get("id"))
        if isinstance(cs := p.get("check_suite"), dict) and cs.get("id") not in repo.check_suites:
            self._suite(repo, cs.get("head_sha") or self.branch_sha(repo, None), cs.get("id"), cs.get("head_branch"))
        for ci in (p.get("check_run"), p.get("check_suite"), p.get("workflow_run")):
            for ref in (ci.get("pull_requests") or []) if isinstance(ci, dict) else []:
                if isinstance(ref, dict) and isinstance(ref.get("number"), int) and ref["number"] not in repo.issues:
                    # CI payloads name their PRs only by number and branches: make the PR exist.
                    self._seed_pull(repo, {"number": ref["number"], "title": f"Pull request #{ref['number']}",
                                           "head": {**(ref.get("head") or {}), "repo": {"full_name": repo.full_name}},
                                           "base": ref.get("base") or {}})
        if isinstance(cr := p.get("check_run"), dict) and cr.get("id") not in repo.check_runs:
            out, suite = cr.get("output") or {}, cr.get("check_suite") or {}
            self.add_check_run(full_name, name=cr.get("name") or "check", head_sha=cr.get("head_sha"),
                               status=cr.get("status") or "completed", conclusion=cr.get("conclusion"),
                               output={k: out[k] for k in ("title", "summary", "text") if k in out},
                               check_suite_id=suite.get("id"), id=cr.get("id"), head_branch=suite.get("head_branch"),
                               details_url=cr.get("details_url"), external_id=cr.get("external_id") or "")
        if isinstance(wr := p.get("workflow_run"), dict) and wr.get("id") not in repo.runs:
            self.add_workflow_run(full_name, name=wr.get("name") or "CI", head_sha=wr.get("head_sha"),
                                  head_branch=wr.get("head_branch"), status=wr.get("status") or "completed",
                                  conclusion=wr.get("conclusion"), event=wr.get("event") or "push", id=wr.get("id"),
                                  check_suite_id=wr.get("check_suite_id"),
                                  path=wr.get("path") or ".github/workflows/ci.yml",
                                  pull_requests=[x["number"] for x in wr.get("pull_requests") or [] if "number" in x])

    def _seed_issue(self, repo: Repo, ip: dict) -> None:
        u, n = ip.get("user") or {}, ip.get("number")
        labels = [self.label(repo, lab["name"]) for lab in ip.get("labels") or [] if "name" in lab]
        if n in repo.issues:
            repo.issues[n].update(title=ip.get("title") or "", body=ip.get("body"), state=ip.get("state", "open"),
                                  labels=labels)
            return
        issue = self._make_issue(repo, number=n, id=ip.get("id"), title=ip.get("title") or "", body=ip.get("body"),
                                 user=u.get("login", "octocat"), user_type=u.get("type"), state=ip.get("state", "open"),
                                 assignees=[a["login"] for a in ip.get("assignees") or []])
        issue["labels"] = labels
        if ip.get("pull_request"):  # an issue_comment on a PR: the PR exists, its branches are unknown
            base = self.branch_sha(repo, None)
            self._attach_pull(repo, issue, f"pr-{n}", base, repo, repo.data["default_branch"], base, False, None)

    def _seed_pull(self, repo: Repo, pr: dict) -> None:
        if pr.get("number") in repo.issues:
            return self._seed_issue(repo, pr)
        head, base, u = pr.get("head") or {}, pr.get("base") or {}, pr.get("user") or {}
        head_repo = (head.get("repo") or {}).get("full_name")
        made = self.add_pull(repo.full_name, title=pr.get("title") or "", body=pr.get("body") or "",
                             user=u.get("login", "octocat"), user_type=u.get("type", "User"),
                             head_ref=head.get("ref", "feature"), head_sha=head.get("sha"),
                             base_ref=base.get("ref") or repo.data["default_branch"],
                             head_repo=head_repo if head_repo and head_repo.lower() != repo.full_name.lower() else None,
                             number=pr.get("number"), draft=bool(pr.get("draft")), state=pr.get("state", "open"))
        issue = repo.issues[made["number"]]
        issue["labels"] = [self.label(repo, lab["name"]) for lab in pr.get("labels") or [] if "name" in lab]
        if pr.get("id"):
            issue["__pull"]["id"] = self._new_id(pr["id"])

    # ---- search ----------------------------------------------------------------------
    @staticmethod
    def parse_query(q: str) -> tuple[list[tuple[str, str, bool]], list[str]]:
        """(qualifiers as (key, value, negated), lower-cased free terms/phrases) of a search string."""
        try:
            tokens = shlex.split(q)
        except ValueError:
            tokens = q.split()
        quals, terms = [], []
        for t in tokens:
            neg = t.startswith("-") and ":" in t
            key, sep, value = t.removeprefix("-").partition(":") if neg else t.partition(":")
            if sep and re.fullmatch(r"[a-z-]+", key) and value:
                quals.append((key.lower(), value, neg))
            elif t.upper() not in ("AND", "OR", "NOT"):
                terms.append(t.lower())
        return quals, terms

    def match_issue(self, repo: Repo, issue: dict, quals: list[tuple[str, str, bool]], terms: list[str]) -> bool:
        where = {v.lower() for k, v, _ in quals if k == "in"} or {"title", "body"}
        text = " ".join([issue["title"]] * ("title" in where) + [issue["body"] or ""] * ("body" in where) + [
            c["body"] for c in repo.comments.values() if "comments" in where and c["__number"] == issue["number"]])
        if not all(t in text.lower() for t in terms):
            return False
        is_pr, labels = "__pull" in issue, {lab["name"].lower() for lab in issue["labels"]}
        for key, value, neg in quals:
            if _qual_ok(key, value.lower(), issue, labels, is_pr) == neg:
                return False
        return True
