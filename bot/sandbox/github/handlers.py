"""What every route of the sandbox GitHub shares: the per-request keys the middleware fills in, and the
helpers handlers answer with (JSON with this host's URLs, GitHub's pagination, body and path parsing)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web

from ..github_state import API, ApiError, SandboxState, invalid, public

R = "/repos/{owner}/{repo}"
HEX40 = re.compile(r"[0-9a-f]{40}")
_Key: Any = getattr(web, "RequestKey", None)  # aiohttp >= 3.13 wants typed request-storage keys
REPO, BODY, INSTALLATION = ((_Key(n, object) if _Key else n) for n in ("sandbox_repo", "sandbox_body", "sandbox_inst"))

#: One route: (method, path template, handler, auth: "jwt" | "token" | None).
Route = tuple[str, str, Callable, str | None]


class Handlers(SandboxState):
    """The model plus the request helpers every resource's handlers use."""

    def _json(self, rq: web.Request, data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
        if status in (204, 304):
            return web.Response(status=status, headers=headers)
        text = json.dumps(public(data)).replace(API, f"{rq.scheme}://{rq.host}")
        return web.Response(text=text, status=status, content_type="application/json", headers=headers)

    @staticmethod
    def _qint(rq: web.Request, name: str, default: int) -> int:
        try:
            return int(rq.query.get(name, default))
        except ValueError:
            raise invalid("Query", name, "invalid") from None

    def _page(self, rq: web.Request, items: list, render: Callable[[Any], Any] = lambda x: x,
              key: str | None = None, extra: dict | None = None) -> web.Response:
        """One page of ``items`` (per_page default 30, max 100) with GitHub's Link header, absolute on this host."""
        per, page = min(max(self._qint(rq, "per_page", 30), 1), 100), max(self._qint(rq, "page", 1), 1)
        last = max(1, -(-len(items) // per))
        chunk = [render(x) for x in items[(page - 1) * per:page * per]]
        rels = ([("prev", page - 1)] if page > 1 else []) + (
            [("next", page + 1), ("last", last)] if page < last else []) + ([("first", 1)] if page > 1 else [])
        headers = {"Link": ", ".join(f'<{rq.url.update_query(page=n)}>; rel="{r}"' for r, n in rels)} if rels else None
        return self._json(rq, chunk if key is None else {"total_count": len(items), **(extra or {}), key: chunk},
                          headers=headers)

    @staticmethod
    def _body(rq: web.Request) -> dict:
        if not isinstance(b := rq.get(BODY) or {}, dict):
            raise ApiError(400, "Problems parsing JSON")
        return b

    @staticmethod
    def _num(rq: web.Request, key: str = "issue_number") -> int:
        return int(rq.match_info[key])  # such routes only match \d+

    @staticmethod
    def _must(item: Any) -> Any:
        if item is None:
            raise ApiError(404)
        return item

    def _get(self, table: dict, key: Any) -> Any:
        return self._must(table.get(key))

    def _issue(self, rq: web.Request) -> dict:
        return self.get_issue(rq[REPO], self._num(rq))

    def _pull(self, rq: web.Request) -> dict:
        return self.get_issue(rq[REPO], self._num(rq, "pull_number"), pull=True)
