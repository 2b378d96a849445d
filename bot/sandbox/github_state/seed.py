"""The whole model of the sandbox GitHub, seeded from webhook payloads so the bot's follow-up reads of what
a payload names (installation, repository, issue, pull request, comment, check run, workflow run) succeed."""

from __future__ import annotations

from .base import Repo
from .checks import ChecksState
from .pulls import PullsState
from .search import SearchState


class SandboxState(PullsState, ChecksState, SearchState):
    """Seeding, lookups and model operations of every resource; no HTTP here."""

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
        if isinstance(cs := p.get("check_suite"), dict) and isinstance(cs.get("head_sha"), str):
            self._pushed(repo, cs["head_sha"], cs.get("head_branch"))
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
