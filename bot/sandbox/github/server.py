"""The sandbox GitHub's server: one aiohttp app over every resource's routes, and the middleware every
request passes through (recording, fault injection, the OpenAPI checks, auth, repo access, JSON parsing,
error shaping, dispatch, rate-limit headers), plus the helpers tests seed and assert with."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..github_state import API, DOCS, ApiError, RecordedRequest, Repo, Write, public
from .apps import AppRoutes
from .checks import CheckRoutes
from .contents import ContentRoutes
from .etags import conditional
from .git import GitRoutes
from .handlers import BODY, INSTALLATION, REPO, Route
from .pulls import PullRoutes
from .search import SearchRoutes

if TYPE_CHECKING:
    from ..mutate import Mutator
    from ..openapi import GitHubOpenAPI

log = logging.getLogger(__name__)


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    body: dict | None
    delay: float
    landed: bool = False  # the request takes effect, then the answer is the fault (a reply lost on the way)


async def _unreachable(rq: web.Request) -> web.StreamResponse:  # aiohttp only matches; the middleware dispatches
    raise AssertionError("dispatched by SandboxGitHub._middleware")


class SandboxGitHub(AppRoutes, PullRoutes, CheckRoutes, GitRoutes, ContentRoutes, SearchRoutes):
    """In-memory GitHub; seed it, point the bot at ``url``, then assert on ``writes``/``requests``."""

    def __init__(self, *, app_id: int = 1, app_public_key_pem: str | bytes | None = None,
                 token_ttl: float = 3600.0, bot_login: str = "triage-lead[bot]",
                 validator: GitHubOpenAPI | None = None) -> None:
        """``validator``: check every request (``/_sandbox/`` routes aside) against GitHub's REST description;
        a mismatch is answered 400 and kept in ``conformance_errors``, a 2xx answer's deviations in
        ``response_errors``."""
        super().__init__(app_id=app_id, bot_login=bot_login)
        self.app_public_key_pem, self.token_ttl = app_public_key_pem, token_ttl
        self.validator = validator
        self.conformance_errors: list[str] = []
        self.response_errors: list[str] = []
        self.validated = 0
        self.mutator: Mutator | None = None  # set it to mutate the JSON answers to reads (bot/sandbox/mutate.py)
        self.requests: list[RecordedRequest] = []  # a 304's status is 304: see ``not_modified``
        self.weak_etags = True  # W/"..." as GitHub mostly sends them; False: strong ones
        self.honour_if_none_match = True  # False: ETags sent, If-None-Match ignored (always a full 200)
        self.tokens_issued = 0
        self.url = ""
        self._tokens = {}  # token -> (installation id, expiry)
        self._faults: list[_Fault] = []
        self._routes: dict[Any, tuple[Callable, str | None]] = {}  # aiohttp route -> (handler, auth)
        self._runner: web.AppRunner | None = None
        self._used: dict[str, int] = {}
        self._reset = int(time.time()) + 3600

    # ---- lifecycle -----------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=50 * 2**20)
        for method, path, handler, auth in self._route_table():
            self._routes[app.router.add_route(method, path, _unreachable)] = (handler, auth)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._runner = web.AppRunner(self.build_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxGitHub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- test helpers --------------------------------------------------------------
    def fail(self, method: str, path_pattern: str, status: int, *, times: int = 1, headers: dict | None = None,
             body: dict | None = None, delay: float = 0.0, landed: bool = False) -> None:
        """Answer the next ``times`` matching requests (method or "*"; path regex, fullmatch) with this status;
        ``headers`` override the usual ones (e.g. x-ratelimit-remaining). ``times=-1``: until clear_faults().
        ``landed``: the request is carried out first, then answered with the fault (the write happened, the
        bot never heard)."""
        self._faults.append(_Fault(method.upper(), re.compile(path_pattern), status, times,
                                   {k.lower(): str(v) for k, v in (headers or {}).items()}, body, delay, landed))

    def clear_faults(self) -> None:
        self._faults.clear()

    def _resolved(self, data: Any) -> Any:
        return json.loads(json.dumps(public(data)).replace(API, self.url or API))

    def issue(self, full_name: str, number: int) -> dict:
        repo = self.repo(full_name)
        return self._resolved(self.issue_json(repo, self.get_issue(repo, number)))

    def pull(self, full_name: str, number: int) -> dict:
        repo = self.repo(full_name)
        return self._resolved(self.pull_json(repo, self.get_issue(repo, number, pull=True)))

    def comments(self, full_name: str, number: int) -> list[dict]:
        repo = self.repo(full_name)
        return self._resolved([self.comment_json(repo, c) for c in sorted(
            (c for c in repo.comments.values() if c["__number"] == number), key=lambda c: c["id"])])

    def written(self, kind: str) -> list[Write]:
        return [w for w in self.writes if w.kind == kind]

    # ---- the one place every request passes through -----------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """Record, then fault / route / auth / JSON / dispatch; errors become GitHub-style bodies. aiohttp only
        matches routes (``handler`` is the ``_unreachable`` placeholder): dispatch goes through ``self._routes``."""
        scheme, _, cred = request.headers.get("Authorization", "").partition(" ")
        cred = cred.strip()
        kind = None if not cred else "jwt" if scheme.lower() == "bearer" and cred.count(".") == 2 else "token"
        raw = await request.read() if request.body_exists else b""
        try:
            parsed, bad_json = (json.loads(raw) if raw.strip() else None), False
        except ValueError:
            parsed, bad_json = None, True
        rec = RecordedRequest(request.method, request.path, dict(request.query), parsed, 0, kind)
        self.requests.append(rec)
        checked = self.validator is not None and not request.path.startswith("/_sandbox/")
        try:
            if checked:
                self._conform(request, parsed, bool(raw.strip()), bad_json)
            resp = await self._respond(request, cred, kind, parsed, bad_json)
        except ApiError as e:
            resp = self._json(request, e.body(), e.status)
        except Exception as e:  # a sandbox bug: answer as GitHub would, keep the traceback in the log
            log.exception("sandbox failed on %s %s", request.method, request.path)
            resp = self._json(request, {"message": f"Sandbox error: {e!r}", "documentation_url": DOCS}, 500)
        if self.mutator is not None and request.method == "GET" and not request.path.startswith("/_sandbox/"):
            resp = self._mutated(request, resp)
        if request.method == "GET" and not request.path.startswith("/_sandbox/"):  # after mutating: what was sent
            resp = conditional(request, resp, cred, weak=self.weak_etags, honour=self.honour_if_none_match)
        rec.status = resp.status
        if checked and 200 <= resp.status < 300 and isinstance(resp, web.Response) and resp.text \
                and resp.content_type == "application/json":
            self._conform_response(request, resp)
        self._stamp(request, resp)
        return resp

    @property
    def not_modified(self) -> int:
        """Requests answered 304 (conditional reads that cost no rate limit)."""
        return sum(1 for r in self.requests if r.status == 304)

    @property
    def mutations(self) -> list[str]:
        """Which request got which mutation, one line each ("GET /repos/o/r: drop .homepage")."""
        return self.mutator.records if self.mutator is not None else []

    def _mutated(self, rq: web.Request, resp: web.StreamResponse) -> web.StreamResponse:
        """A 2xx JSON answer to a read, as the mutator would have GitHub send it (still checked against the
        description below: a mutation must stay within it). An emptied page has no next page."""
        if not (isinstance(resp, web.Response) and 200 <= resp.status < 300 and resp.text
                and resp.content_type == "application/json"):
            return resp
        out = self.mutator.answer(rq.method, rq.rel_url.raw_path_qs, resp.status,  # type: ignore[union-attr]
                                  json.loads(resp.text))
        if out is None:
            return resp
        data, changes = out
        headers = {k: v for k, v in resp.headers.items() if k.lower() not in ("content-type", "content-length")
                   and not (k.lower() == "link" and any(c.startswith("empty page") for c in changes))}
        return web.Response(text=json.dumps(data), status=resp.status, content_type="application/json",
                            headers=headers)

    def _conform_response(self, rq: web.Request, resp: web.Response) -> None:
        """The sandbox's own 2xx answer against the description's response schema (its top level)."""
        try:
            self.response_errors += self.validator.check_response(  # type: ignore[union-attr]
                rq.method, rq.rel_url.raw_path, resp.status, json.loads(resp.text or ""))
        except Exception as e:  # a checker bug must not turn into the bot's problem
            self.response_errors.append(f"{rq.method} {rq.path}: the response could not be checked: {e!r}")

    def _conform(self, rq: web.Request, parsed: Any, has_body: bool, bad_json: bool) -> None:
        """The OpenAPI request check: GitHub's description, not the sandbox's leniency, decides."""
        self.validated += 1
        problems = ([f"{rq.method} {rq.path}: the body is not JSON"] if bad_json else
                    self.validator.check_request(  # type: ignore[union-attr]
                        rq.method, rq.rel_url.raw_path, list(rq.query.items()), parsed, has_body=has_body))
        if problems:
            self.conformance_errors += problems
            raise ApiError(400, "Request does not conform to GitHub's REST description: " + "; ".join(problems))

    async def _respond(self, rq: web.Request, cred: str, kind: str | None, parsed: Any,
                       bad_json: bool) -> web.StreamResponse:
        if (fault := self._take_fault(rq.method, rq.path)) is not None:
            if fault.landed:
                await self._dispatch(rq, cred, kind, parsed, bad_json)
            await asyncio.sleep(fault.delay)
            body = fault.body if fault.body is not None else {"message": HTTPStatus(fault.status).phrase,
                                                              "documentation_url": DOCS}
            return self._json(rq, body, fault.status, fault.headers)
        return await self._dispatch(rq, cred, kind, parsed, bad_json)

    async def _dispatch(self, rq: web.Request, cred: str, kind: str | None, parsed: Any,
                        bad_json: bool) -> web.StreamResponse:
        if rq.match_info.http_exception is not None or rq.match_info.route not in self._routes:
            raise ApiError(404)  # GitHub answers unknown routes and wrong methods alike
        method, auth = self._routes[rq.match_info.route]
        if auth == "jwt":
            self._check_jwt(cred if kind == "jwt" else None)
        elif auth == "token":
            rq[INSTALLATION] = self._check_token(cred)
            if "owner" in rq.match_info:
                rq[REPO] = self._repo_for(rq, rq.match_info["owner"], rq.match_info["repo"])
        if bad_json:
            raise ApiError(400, "Problems parsing JSON")
        rq[BODY] = parsed  # (the OpenAPI request check ran first, in _middleware, when a validator is set)
        result = method(rq)
        result = await result if inspect.isawaitable(result) else result
        if isinstance(result, web.StreamResponse):
            return result
        return self._json(rq, *(result if isinstance(result, tuple) else (result,)))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for f in self._faults:
            if f.method in ("*", method) and f.pattern.fullmatch(path):
                f.times -= 1
                if f.times == 0:
                    self._faults.remove(f)
                return f
        return None

    def _stamp(self, rq: web.Request, resp: web.StreamResponse) -> None:
        """Plausible rate-limit headers. The sandbox never throttles by itself (remaining stays >= 1): simulate
        exhaustion with ``fail(..., headers={"x-ratelimit-remaining": "0"})``. A 304 uses none, as on GitHub."""
        resource = "search" if rq.path.startswith("/search/") else "core"
        used = self._used[resource] = self._used.get(resource, 0) + (resp.status != 304)
        limit = 30 if resource == "search" else 5000
        for k, v in {"x-ratelimit-limit": limit, "x-ratelimit-remaining": max(1, limit - used),
                     "x-ratelimit-reset": self._reset, "x-ratelimit-used": used, "x-ratelimit-resource": resource,
                     "x-github-request-id": uuid.uuid4().hex[:20].upper(),
                     "x-github-api-version-selected": "2022-11-28"}.items():
            resp.headers.setdefault(k, str(v))

    def _repo_for(self, rq: web.Request, owner: str, name: str) -> Repo:
        """404 when missing or outside the token's installation: GitHub hides what you cannot see."""
        repo = self._repos.get(f"{owner}/{name}".lower())
        if repo is None or not self._owns(rq[INSTALLATION], repo):
            raise ApiError(404)
        return repo

    def _route_table(self) -> list[Route]:
        """Every resource's routes. Order matters where templates overlap (``commits/{ref}/check-runs`` before
        ``commits/{ref:.+}``): aiohttp tries them in turn."""
        return (self.app_routes() + self.issue_routes() + self.pull_routes() + self.check_routes()
                + self.git_routes() + self.content_routes() + self.search_routes())
