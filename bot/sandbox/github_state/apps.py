"""The App's side of the sandbox GitHub's model: installations, the repositories they hold and who may do
what in them, hook deliveries, and one-time manifest codes."""

from __future__ import annotations

from .base import API, EMPTY_TREE, WEB, Repo, iso, node_id, public
from .git import GitState

#: GitHub's collaborator-permission endpoint folds the fine roles into the legacy levels.
PERMISSION_OF_ROLE = {"admin": "admin", "maintain": "write", "write": "write",
                      "triage": "read", "read": "read", "none": "none"}

#: What GitHub's full repository object carries besides names and urls; the sandbox does not model these.
REPO_DEFAULTS = {"homepage": None, "language": None, "license": None, "mirror_url": None, "size": 0, "forks": 0,
                 "forks_count": 0, "stargazers_count": 0, "watchers": 0, "watchers_count": 0, "network_count": 0,
                 "subscribers_count": 0, "has_projects": False, "has_wiki": False, "has_pages": False,
                 "has_discussions": False, "has_downloads": True, "is_template": False,
                 "allow_forking": True}


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


class AppsState(GitState):
    """Installations and their repositories (each made with an initial commit), permissions, deliveries."""

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

    def _owns(self, inst_id: int, repo: Repo) -> bool:
        """Repos belong to their installation, or (none given) to the installation on their owner's account."""
        if repo.installation_id is not None:
            return repo.installation_id == inst_id
        inst = self._installations.get(inst_id)
        return inst is not None and inst["account"]["login"].lower() == repo.owner.lower()

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
