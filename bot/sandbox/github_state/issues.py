"""Issues, comments, labels and reactions in the sandbox GitHub's model (pull requests are issues too:
one number space)."""

from __future__ import annotations

from collections.abc import Iterable

from .base import WEB, Repo, StateBase, invalid, iso, node_id, public

REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")


class IssuesState(StateBase):
    """Issues and their comments, labels and reactions, and their JSON shapes."""

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
