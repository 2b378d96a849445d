"""Search routes of the sandbox GitHub: issues and pull requests, and code on default branches, within
the repositories the token's installation may see."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..github_state import WEB, ApiError, Repo, invalid
from .handlers import INSTALLATION, Handlers, Route


class SearchRoutes(Handlers):
    """``/search/issues`` and ``/search/code``."""

    def search_routes(self) -> list[Route]:
        t = "token"
        return [
            ("GET", "/search/issues", self.h_search_issues, t),
            ("GET", "/search/code", self.h_search_code, t),
        ]

    def _search(self, rq: web.Request) -> tuple[list[Repo], list[tuple[str, str, bool]], list[str]]:
        """Repos the query may search (422 for a named repo the token cannot see), qualifiers, terms."""
        if not (q := rq.query.get("q", "").strip()):
            raise invalid("Search", "q", "missing")
        quals, terms = self.parse_query(q)
        visible = {r.full_name.lower(): r for r in self._repos.values() if self._owns(rq[INSTALLATION], r)}
        named = [v.lower() for k, v, _ in quals if k == "repo"]
        owners = [v.lower() for k, v, _ in quals if k in ("org", "user", "owner")]
        if any(n not in visible for n in named):
            raise ApiError(422, "Validation Failed", [{
                "message": "The listed users and repositories cannot be searched either because the resources do "
                           "not exist or you do not have permission to view them.",
                "resource": "Search", "field": "q", "code": "invalid"}])
        repos = [r for f, r in visible.items()
                 if (not named or f in named) and (not owners or r.owner.lower() in owners)]
        return repos, quals, terms

    def h_search_issues(self, rq: web.Request) -> Any:
        """repo:, org:, is:issue|pr|open|closed, state:, label:, author:, in:, no:label, "phrases" and words."""
        repos, quals, terms = self._search(rq)
        hits = [(r, i) for r in repos for i in r.issues.values() if self.match_issue(r, i, quals, terms)]
        key = rq.query.get("sort") if rq.query.get("sort") in ("created", "updated") else "created"
        hits.sort(key=lambda h: (h[1][f"{key}_at"], h[1]["number"]), reverse=rq.query.get("order") != "asc")
        return self._page(rq, hits, lambda h: self.issue_json(*h) | {"score": 1.0}, "items",
                          {"incomplete_results": False, "search_type": "lexical"})

    def h_search_code(self, rq: web.Request) -> Any:
        """repo:/org: and words (all must appear, case-insensitively) in default-branch files."""
        repos, _, terms = self._search(rq)
        hits = [(repo, path, sha, head) for repo in repos for head in [self.branch_sha(repo, None)]
                for path, (_, typ, sha) in sorted(self.flatten(self.commit_tree(head)).items())
                if typ == "blob" and all(t in self.blob_text(sha).lower() for t in terms)]
        return self._page(rq, hits, lambda h: {
            "name": h[1].rsplit("/", 1)[-1], "path": h[1], "sha": h[2], "score": 1.0,
            "url": f"{h[0].api}/contents/{h[1]}?ref={h[3]}", "git_url": f"{h[0].api}/git/blobs/{h[2]}",
            "html_url": f"{WEB}/{h[0].full_name}/blob/{h[3]}/{h[1]}", "repository": self.repo_json(h[0], brief=True)},
            "items", {"incomplete_results": False})
