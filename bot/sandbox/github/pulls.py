"""Pull request routes of the sandbox GitHub: listing, opening (with GitHub's 422s), files, reviews and
their dismissal."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..github_state import ApiError, custom_invalid, invalid, public
from .handlers import REPO, R, Route
from .issues import IssueRoutes


class PullRoutes(IssueRoutes):
    """Pull requests and reviews; a pull request is edited as the issue it is (``h_edit_issue``)."""

    def pull_routes(self) -> list[Route]:
        p, t = "{pull_number:\\d+}", "token"
        return [
            ("GET", f"{R}/pulls", self.h_pulls, t),
            ("POST", f"{R}/pulls", self.h_create_pull, t),
            ("GET", f"{R}/pulls/{p}", lambda rq: self.pull_json(rq[REPO], self._pull(rq)), t),
            ("PATCH", f"{R}/pulls/{p}", self.h_edit_issue, t),
            ("GET", f"{R}/pulls/{p}/files", lambda rq: self._page(rq, self.pull_files(rq[REPO], self._pull(rq))), t),
            ("GET", f"{R}/pulls/{p}/reviews", lambda rq: self._page(rq, self._pull(rq)["__pull"]["reviews"]), t),
            ("POST", f"{R}/pulls/{p}/reviews", self.h_create_review, t),
            ("PUT", f"{R}/pulls/{p}/reviews/{{review_id:\\d+}}/dismissals", self.h_dismiss_review, t),
        ]

    def h_pulls(self, rq: web.Request) -> Any:
        repo, q = rq[REPO], rq.query

        def keep(i: dict) -> bool:
            p = i["__pull"]
            head = f"{p['head_repo'].split('/')[0]}:{p['head_ref']}".lower()
            return (q.get("state", "open") in ("all", i["state"]) and q.get("head", head).lower() == head
                    and q.get("base", p["base_ref"]) == p["base_ref"])
        items = [i for i in sorted(repo.issues.values(), key=lambda i: i["number"], reverse=q.get("direction") != "asc")
                 if "__pull" in i and keep(i)]
        return self._page(rq, items, lambda i: self.pull_json(repo, i))

    def h_create_pull(self, rq: web.Request) -> Any:
        """422 unless head (``branch`` or ``owner:branch`` of a fork) exists, differs from base, has no open PR."""
        repo, b = rq[REPO], self._body(rq)
        for f in ("title", "head", "base"):
            if not b.get(f):
                raise invalid("PullRequest", f)
        owner, _, branch = b["head"].rpartition(":")
        owner = owner or repo.owner
        hrepo = repo if owner.lower() == repo.owner.lower() else next(
            (r for r in self._repos.values() if r.owner.lower() == owner.lower()
             and r.data.get("parent", {}).get("full_name", "").lower() == repo.full_name.lower()), None)
        if hrepo is None or f"refs/heads/{branch}" not in hrepo.refs:
            raise invalid("PullRequest", "head", "invalid")
        if f"refs/heads/{b['base']}" not in repo.refs:
            raise invalid("PullRequest", "base", "invalid")
        if any(i["state"] == "open" and (i["__pull"]["head_repo"], i["__pull"]["head_ref"]) == (hrepo.full_name, branch)
               for i in repo.issues.values() if "__pull" in i):
            raise custom_invalid("PullRequest", f"A pull request already exists for {owner}:{branch}.")
        head_sha, base_sha = hrepo.refs[f"refs/heads/{branch}"], repo.refs[f"refs/heads/{b['base']}"]
        if head_sha in self.ancestors(base_sha):
            raise custom_invalid("PullRequest", f"No commits between {b['base']} and {branch}")
        issue = self._make_issue(repo, title=b["title"], body=b.get("body"), user=self.bot_login, user_type="Bot")
        self._attach_pull(repo, issue, branch, head_sha, hrepo, b["base"], base_sha, bool(b.get("draft")), None)
        self._write("pull", repo, issue["number"], b | {"number": issue["number"]})
        return self.pull_json(repo, issue), 201

    def h_create_review(self, rq: web.Request) -> Any:
        """Reviews with line ``comments`` are kept whole on the review; no event means PENDING."""
        repo, b, issue = rq[REPO], self._body(rq), self._pull(rq)
        event = b.get("event")
        states = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED",
                  None: "PENDING"}
        if event not in states:
            raise invalid("PullRequestReview", "event", "invalid")
        if event in ("REQUEST_CHANGES", "COMMENT") and not b.get("body") and not b.get("comments"):
            raise ApiError(422, "Unprocessable Entity", [f"Body is required when using event {event}"])
        if event in ("APPROVE", "REQUEST_CHANGES") and issue["user"]["login"].lower() == self.bot_login.lower():
            verb = "approve" if event == "APPROVE" else "request changes on"
            raise ApiError(422, "Unprocessable Entity", [f"Review Can not {verb} your own pull request"])
        self._check_review_lines(repo, issue, b.get("comments") or [])
        review = self._add_review(issue, self.bot_login, None, body=b.get("body") or "", state=states[event],
                                  association="NONE", submitted=bool(event), commit_id=b.get("commit_id"),
                                  comments=b.get("comments") or [])
        self._write("review", repo, issue["number"], b | {"id": review["id"]})
        return review

    def _check_review_lines(self, repo: Any, issue: dict, comments: list) -> None:
        """GitHub's 422 for a line comment outside the diff (its words): only lines inside the hunks of the pull
        request's diff, on the side named (RIGHT unless said), take a review comment."""
        sides = self.diff_sides(repo, issue)
        for c in comments:
            if c.get("path") not in sides:
                raise ApiError(422, "Unprocessable Entity", ["Path could not be resolved"])
            if c.get("line") is not None and c["line"] not in sides[c["path"]][c.get("side") or "RIGHT"]:
                raise ApiError(422, "Unprocessable Entity", ["Pull request review thread line must be part of the diff "
                                                             "and Pull request review thread diff hunk can't be blank"])

    def h_dismiss_review(self, rq: web.Request) -> Any:
        """Only an APPROVED or CHANGES_REQUESTED review can be dismissed, with a message, as on GitHub."""
        repo, b, issue = rq[REPO], self._body(rq), self._pull(rq)
        review = next((r for r in issue["__pull"]["reviews"] if r["id"] == self._num(rq, "review_id")), None)
        if review is None:
            raise ApiError(404, "Not Found")
        if not isinstance(b.get("message"), str) or not b["message"]:
            raise invalid("PullRequestReview", "message")
        if review["state"] not in ("APPROVED", "CHANGES_REQUESTED"):  # GitHub's own words for each state
            raise ApiError(422, f"Can not dismiss a {review['state'].lower()} pull request review")
        review["state"] = "DISMISSED"
        self._write("review_dismissal", repo, issue["number"], {"review_id": review["id"], "message": b["message"]})
        return public(review)
