"""Issue routes of the sandbox GitHub: issues, their comments, labels and reactions (and PATCH of a pull
request, which edits the issue it is)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..github_state import ApiError, invalid, iso
from .handlers import BODY, REPO, Handlers, R, Route


class IssueRoutes(Handlers):
    """Issues, comments, labels, reactions."""

    def issue_routes(self) -> list[Route]:
        n, c, t = "{issue_number:\\d+}", "{comment_id:\\d+}", "token"
        return [
            ("GET", f"{R}/issues", self.h_issues, t),
            ("POST", f"{R}/issues", self.h_create_issue, t),
            ("GET", f"{R}/issues/{n}", self.h_issue, t),
            ("PATCH", f"{R}/issues/{n}", self.h_edit_issue, t),
            ("GET", f"{R}/issues/{n}/comments", self.h_comments, t),
            ("POST", f"{R}/issues/{n}/comments", self.h_create_comment, t),
            ("GET", f"{R}/issues/comments/{c}", self.h_comment, t),
            ("PATCH", f"{R}/issues/comments/{c}", self.h_comment, t),
            ("DELETE", f"{R}/issues/comments/{c}", self.h_comment, t),
            ("POST", f"{R}/issues/{n}/labels", self.h_labels, t),
            ("PUT", f"{R}/issues/{n}/labels", self.h_labels, t),
            ("GET", f"{R}/issues/{n}/labels", lambda rq: self._page(rq, self._issue(rq)["labels"]), t),
            ("DELETE", f"{R}/issues/{n}/labels/{{name}}", self.h_remove_label, t),
            ("GET", f"{R}/labels", lambda rq: self._page(rq, list(rq[REPO].labels.values())), t),
            ("POST", f"{R}/labels", self.h_create_label, t),
            ("POST", f"{R}/issues/comments/{c}/reactions", self.h_react, t),
            ("POST", f"{R}/issues/{n}/reactions", self.h_react, t),
        ]

    def before_next_read(self, full_name: str, number: int, do: Callable[[dict], None]) -> None:
        """Run ``do(issue)`` once, just before the next GET of that issue answers: a person's edit that lands
        while the bot is between deciding to edit the issue and editing it (tests of merge-before-edit)."""
        hooks: dict[tuple[str, int], list[Callable[[dict], None]]] = vars(self).setdefault("_read_hooks", {})
        hooks.setdefault((full_name.lower(), number), []).append(do)

    def h_issue(self, rq: web.Request) -> Any:
        issue = self._issue(rq)
        for do in vars(self).get("_read_hooks", {}).pop((rq[REPO].full_name.lower(), issue["number"]), []):
            do(issue)
        return self.issue_json(rq[REPO], issue)

    def h_issues(self, rq: web.Request) -> Any:
        repo, q = rq[REPO], rq.query
        want = {lab.strip().lower() for lab in q.get("labels", "").split(",") if lab.strip()}
        items = [i for i in sorted(repo.issues.values(), key=lambda i: i["number"], reverse=q.get("direction") != "asc")
                 if q.get("state", "open") in ("all", i["state"])
                 and want <= {lab["name"].lower() for lab in i["labels"]}
                 and q.get("creator", i["user"]["login"]).lower() == i["user"]["login"].lower()]
        return self._page(rq, items, lambda i: self.issue_json(repo, i))

    @staticmethod
    def _names(labels: Any) -> list[str]:
        """Label names from ["a"], [{"name": "a"}] or {"labels": [...]}, all of which GitHub accepts."""
        labels = labels.get("labels") if isinstance(labels, dict) else labels
        if not isinstance(labels, list):
            raise invalid("Label", "labels")
        return [lab["name"] if isinstance(lab, dict) else str(lab) for lab in labels]

    def h_create_issue(self, rq: web.Request) -> Any:
        repo, b = rq[REPO], self._body(rq)
        if b.get("title") in (None, ""):
            raise invalid("Issue", "title")
        issue = self._make_issue(repo, title=str(b["title"]), body=b.get("body"), user=self.bot_login,
                                 labels=self._names(b.get("labels") or []),
                                 assignees=b.get("assignees") or ([b["assignee"]] if b.get("assignee") else []))
        self._write("issue", repo, issue["number"], b | {"number": issue["number"]})
        return self.issue_json(repo, issue), 201

    def h_edit_issue(self, rq: web.Request) -> Any:
        """PATCH issues/{n} and pulls/{n}: title, body, state, labels, assignees (+ base, draft for PRs)."""
        repo, b, is_pull = rq[REPO], self._body(rq), "pull_number" in rq.match_info
        issue = self._pull(rq) if is_pull else self._issue(rq)
        if "title" in b and not b["title"]:
            raise invalid("Issue", "title")
        if b.get("state") not in (None, "open", "closed"):
            raise invalid("Issue", "state", "invalid")
        if is_pull and "base" in b and f"refs/heads/{b['base']}" not in repo.refs:
            raise invalid("PullRequest", "base", "invalid")
        issue.update({k: b[k] for k in ("title", "body") if k in b} | {"updated_at": iso()})
        if b.get("state", issue["state"]) != issue["state"]:
            closed = b["state"] == "closed"
            issue.update(state=b["state"], closed_at=iso() if closed else None,
                         state_reason=b.get("state_reason", "completed" if closed else "reopened"))
        if "labels" in b:
            issue["labels"] = [self.label(repo, name) for name in self._names(b["labels"])]
        if "assignees" in b:
            issue["assignees"] = [self.user(a) for a in b["assignees"] or []]
            issue["assignee"] = (issue["assignees"] or [None])[0]
        if is_pull:
            issue["__pull"].update({"base_ref": b.get("base", issue["__pull"]["base_ref"]),
                                    "draft": b.get("draft", issue["__pull"]["draft"])})
        self._write("pull_edit" if is_pull else "issue_edit", repo, issue["number"], b)
        return self.pull_json(repo, issue) if is_pull else self.issue_json(repo, issue)

    def h_comments(self, rq: web.Request) -> Any:
        repo, n, since = rq[REPO], self._num(rq), rq.query.get("since", "")
        self.get_issue(repo, n)
        items = sorted((c for c in repo.comments.values() if c["__number"] == n and c["updated_at"] >= since),
                       key=lambda c: c["id"])
        return self._page(rq, items, lambda c: self.comment_json(repo, c))

    @staticmethod
    def _comment_body(b: dict) -> str:
        if not isinstance(b.get("body"), str) or not b["body"]:
            raise invalid("IssueComment", "body")
        return b["body"]

    def h_create_comment(self, rq: web.Request) -> Any:
        repo, n = rq[REPO], self._num(rq)
        issue, body = self.get_issue(repo, n), self._comment_body(self._body(rq))
        comment = self._make_comment(repo, issue, body, self.bot_login, "Bot")
        self._write("comment", repo, n, {"id": comment["id"], "body": body})
        return self.comment_json(repo, comment), 201

    def h_comment(self, rq: web.Request) -> Any:
        """GET, PATCH (body) or DELETE one issue comment."""
        repo = rq[REPO]
        c = self._get(repo.comments, self._num(rq, "comment_id"))
        if rq.method == "DELETE":
            del repo.comments[c["id"]]
            self._write("comment_deleted", repo, c["__number"], {"id": c["id"]})
            return None, 204
        if rq.method == "PATCH":
            c.update(body=self._comment_body(self._body(rq)), updated_at=iso())
            self._write("comment_edit", repo, c["__number"], {"id": c["id"], "body": c["body"]})
        return self.comment_json(repo, c)

    def h_labels(self, rq: web.Request) -> Any:
        """POST adds (creating unknown repo labels, as GitHub does); PUT replaces. Answers the full list."""
        repo, n = rq[REPO], self._num(rq)
        issue, names = self.get_issue(repo, n), self._names(rq[BODY] if rq[BODY] is not None else [])
        if rq.method == "PUT":
            issue["labels"] = []
        have = {lab["name"].lower() for lab in issue["labels"]}
        issue["labels"] += [self.label(repo, x) for x in dict.fromkeys(names) if x.lower() not in have]
        self._write("labels_set" if rq.method == "PUT" else "labels", repo, n, {"labels": names})
        return issue["labels"]

    def h_remove_label(self, rq: web.Request) -> Any:
        repo, n, name = rq[REPO], self._num(rq), rq.match_info["name"]
        issue = self.get_issue(repo, n)
        keep = [lab for lab in issue["labels"] if lab["name"].lower() != name.lower()]
        if len(keep) == len(issue["labels"]):
            raise ApiError(404, "Label does not exist")
        issue["labels"] = keep
        self._write("label_removed", repo, n, {"name": name})
        return keep

    def h_create_label(self, rq: web.Request) -> Any:
        repo, b = rq[REPO], self._body(rq)
        if not b.get("name"):
            raise invalid("Label", "name")
        if b["name"].lower() in repo.labels:
            raise invalid("Label", "name", "already_exists")
        lab = self.label(repo, b["name"], (b.get("color") or "ededed").lstrip("#"), b.get("description"))
        self._write("label_created", repo, None, b)
        return lab, 201

    def h_react(self, rq: web.Request) -> Any:
        """201 for a new reaction, 200 when this user already left the same one."""
        repo, content = rq[REPO], self._body(rq).get("content", "")
        if "comment_id" in rq.match_info:
            subject, key = "comment", self._get(repo.comments, self._num(rq, "comment_id"))["id"]
            number = repo.comments[key]["__number"]
        else:
            subject, key = "issue", self._issue(rq)["number"]
            number = key
        reaction, created = self.react(repo, subject, key, content, self.bot_login)
        if created:
            self._write("reaction", repo, number, {"content": content, "subject": subject, "subject_id": key})
        return reaction, 201 if created else 200
