"""What every resource of the sandbox GitHub's model shares: GitHub's error shape, the records tests
assert on, the repository record, JSON helpers, and ``StateBase`` (the stores, ids, users, lookups)."""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

API = "http://api.sandbox.invalid"
WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


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


def user_urls(url: str) -> dict:
    """The url fields of GitHub's user object (RFC 6570 templates where GitHub uses them)."""
    return {"followers_url": f"{url}/followers", "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}", "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions", "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos", "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events"}


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


class StateBase:
    """The stores every resource keeps its objects in, ids, users and lookups; no HTTP here."""

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
