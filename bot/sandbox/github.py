"""A sandbox GitHub: an in-memory aiohttp server speaking the REST slice the bot uses.

Lets the real gidgethub client (``base_url=sandbox.url``), the ``replay`` CLI and the
tests run the bot end to end without github.com.  Every request goes through
``SandboxGitHub._middleware`` (recording, fault injection, auth, repo access, JSON
parsing, error shaping, dispatch); given a ``validator`` (``openapi.GitHubOpenAPI``) it first
checks each request against GitHub's REST description — route templates are GitHub's own
(e.g. ``/repos/{owner}/{repo}/issues/{issue_number}``).  Handlers are plain methods that
return JSON-able data, ``(data, status)`` or an aiohttp response.

Write kinds (``SandboxGitHub.writes``; data is the request body plus the ids noted):
comment, comment_edit, comment_deleted (id, body) · issue, issue_edit, pull, pull_edit (+number) ·
labels (POST; data["labels"] = names sent), labels_set (PUT), label_removed (name), label_created ·
reaction (content, subject "issue"|"comment", subject_id; only when new) · review (+id) ·
review_dismissal (review_id, message) · check_run, check_run_edit (+id) · ref, ref_update (ref, sha, force) ·
blob, tree, commit (+sha) ·
contents (PUT; +path, branch, commit) · redelivery (delivery_id, guid) · manifest_conversion.
Token creation is not a write: see ``tokens_issued``.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import jwt
from aiohttp import web

from .github_state import (
    API,
    DOCS,
    WEB,
    ApiError,
    RecordedRequest,
    Repo,
    SandboxState,
    Write,
    b64_lines,
    custom_invalid,
    invalid,
    iso,
    node_id,
    public,
)

if TYPE_CHECKING:
    from .mutate import Mutator
    from .openapi import GitHubOpenAPI

__all__ = ["SandboxGitHub", "RecordedRequest", "Write", "ApiError"]
log = logging.getLogger(__name__)
R = "/repos/{owner}/{repo}"
HEX40 = re.compile(r"[0-9a-f]{40}")
_Key: Any = getattr(web, "RequestKey", None)  # aiohttp >= 3.13 wants typed request-storage keys
REPO, BODY, INSTALLATION = ((_Key(n, object) if _Key else n) for n in ("sandbox_repo", "sandbox_body", "sandbox_inst"))


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


class SandboxGitHub(SandboxState):
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
        self.requests: list[RecordedRequest] = []
        self.tokens_issued = 0
        self.url = ""
        self._tokens: dict[str, tuple[int, float]] = {}  # token -> (installation id, expiry)
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

    def mint_token(self, installation_id: int, ttl: float | None = None) -> str:
        """An installation token without the JWT dance (for the replay CLI); ``tokens_issued`` only counts
        tokens created through the API."""
        token = "ghs_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
        self._tokens[token] = (installation_id, time.time() + (self.token_ttl if ttl is None else ttl))
        return token

    def _resolved(self, data: Any) -> Any:
        return json.loads(json.dumps(public(data)).replace(API, self.url or API))

    def issue(self, full_name: str, number: int) -> dict:
        repo = self.repo(full_name)
        return self._resolved(self.issue_json(repo, self.get_issue(repo, number)))

    def pull(self, full_name: str, number: int) -> dict:
        repo = self.repo(full_name)
        return self._resolved(self.pull_json(repo, self.get_issue(repo, number, pull=True)))

    def add_review(self, full_name: str, number: int, body: str, *, user: str = "octocat", user_type: str = "User",
                   state: str = "COMMENTED") -> dict:
        """A review someone else left on a pull request (the App's own are made through the API)."""
        issue = self.get_issue(self.repo(full_name), number, pull=True)
        rid = self._new_id()
        review = {"id": rid, "node_id": node_id("PRR", rid), "user": self.user(user, user_type), "body": body,
                  "state": state, "author_association": "CONTRIBUTOR",
                  "html_url": f"{issue['html_url']}#pullrequestreview-{rid}",
                  "_links": {"html": {"href": f"{issue['html_url']}#pullrequestreview-{rid}"},
                             "pull_request": {"href": issue["pull_request"]["url"]}},
                  "pull_request_url": issue["pull_request"]["url"], "submitted_at": iso(),
                  "commit_id": self.pull_head_sha(issue), "__comments": []}
        issue["__pull"]["reviews"].append(review)
        return review

    def reviews(self, full_name: str, number: int) -> list[dict]:
        return list(self.get_issue(self.repo(full_name), number, pull=True)["__pull"]["reviews"])

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
        rec.status = resp.status
        if checked and 200 <= resp.status < 300 and isinstance(resp, web.Response) and resp.text \
                and resp.content_type == "application/json":
            self._conform_response(request, resp)
        self._stamp(request, resp)
        return resp

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
        exhaustion with ``fail(..., headers={"x-ratelimit-remaining": "0"})``."""
        resource = "search" if rq.path.startswith("/search/") else "core"
        used = self._used[resource] = self._used.get(resource, 0) + 1
        limit = 30 if resource == "search" else 5000
        for k, v in {"x-ratelimit-limit": limit, "x-ratelimit-remaining": max(1, limit - used),
                     "x-ratelimit-reset": self._reset, "x-ratelimit-used": used, "x-ratelimit-resource": resource,
                     "x-github-request-id": uuid.uuid4().hex[:20].upper(),
                     "x-github-api-version-selected": "2022-11-28"}.items():
            resp.headers.setdefault(k, str(v))

    def _check_jwt(self, token: str | None) -> None:
        """Validate an app JWT as GitHub does: RS256, iss, exp in the future, iat not ahead, <= ~10 min life."""
        bad = ApiError(401, "A JSON web token could not be decoded")
        key = self.app_public_key_pem
        try:
            if not token or jwt.get_unverified_header(token).get("alg") != "RS256":
                raise bad
            # no key: the signature is not checked, and PyJWT ignores the key
            claims = jwt.decode(token, key if key is not None else "", algorithms=["RS256"], options={
                "verify_signature": key is not None, "verify_exp": False, "verify_iat": False,
                "verify_nbf": False, "verify_iss": False, "verify_aud": False})
        except jwt.PyJWTError:
            raise bad from None
        now, iat, exp = time.time(), claims.get("iat"), claims.get("exp")
        if str(claims.get("iss")) != str(self.app_id):
            raise ApiError(401, "'Issuer' claim ('iss') must be an Integer matching the app id")
        if not isinstance(exp, (int, float)) or exp <= now:
            raise ApiError(401, "'Expiration time' claim ('exp') must be a numeric value representing the future "
                                "time at which the assertion expires")
        if not isinstance(iat, (int, float)) or iat > now + 60 or exp - iat > 660:
            raise ApiError(401, "'Issued at' claim ('iat') must be an Integer representing the time that the "
                                "assertion was issued, at most 10 minutes before 'exp'")

    def _check_token(self, cred: str) -> int:
        if not cred:
            raise ApiError(401, "Requires authentication")
        if (rec := self._tokens.get(cred)) is None or rec[1] <= time.time():
            raise ApiError(401, "Bad credentials")
        return rec[0]

    def _owns(self, inst_id: int, repo: Repo) -> bool:
        """Repos belong to their installation, or (none given) to the installation on their owner's account."""
        if repo.installation_id is not None:
            return repo.installation_id == inst_id
        inst = self._installations.get(inst_id)
        return inst is not None and inst["account"]["login"].lower() == repo.owner.lower()

    def _repo_for(self, rq: web.Request, owner: str, name: str) -> Repo:
        """404 when missing or outside the token's installation: GitHub hides what you cannot see."""
        repo = self._repos.get(f"{owner}/{name}".lower())
        if repo is None or not self._owns(rq[INSTALLATION], repo):
            raise ApiError(404)
        return repo

    # ---- response helpers ----------------------------------------------------------
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

    def _route_table(self) -> list[tuple[str, str, Callable, str | None]]:
        n, c, p, t = "{issue_number:\\d+}", "{comment_id:\\d+}", "{pull_number:\\d+}", "token"
        inst, cr, run, job = ("{installation_id:\\d+}", "{check_run_id:\\d+}", "{run_id:\\d+}", "{job_id:\\d+}")
        return [
            ("GET", "/app", lambda rq: self.app_info, "jwt"),
            ("POST", f"/app/installations/{inst}/access_tokens", self.h_token, "jwt"),
            ("GET", "/app/hook/deliveries", self.h_deliveries, "jwt"),
            ("POST", "/app/hook/deliveries/{delivery_id:\\d+}/attempts", self.h_redeliver, "jwt"),
            ("POST", "/app-manifests/{code}/conversions", self.h_manifest, None),
            ("GET", f"{R}/installation", self.h_repo_installation, "jwt"),
            ("GET", f"/_sandbox/logs/{{owner}}/{{repo}}/{job}", self.h_log_download, None),
            ("GET", R, lambda rq: self.repo_json(rq[REPO]), t),
            ("GET", f"{R}/issues", self.h_issues, t),
            ("POST", f"{R}/issues", self.h_create_issue, t),
            ("GET", f"{R}/issues/{n}", lambda rq: self.issue_json(rq[REPO], self._issue(rq)), t),
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
            ("GET", f"{R}/collaborators/{{username}}/permission",
             lambda rq: self.permission_json(rq[REPO], rq.match_info["username"]), t),
            ("GET", f"{R}/pulls", self.h_pulls, t),
            ("POST", f"{R}/pulls", self.h_create_pull, t),
            ("GET", f"{R}/pulls/{p}", lambda rq: self.pull_json(rq[REPO], self._pull(rq)), t),
            ("PATCH", f"{R}/pulls/{p}", self.h_edit_issue, t),
            ("GET", f"{R}/pulls/{p}/files", lambda rq: self._page(rq, self.pull_files(rq[REPO], self._pull(rq))), t),
            ("GET", f"{R}/pulls/{p}/reviews", lambda rq: self._page(rq, self._pull(rq)["__pull"]["reviews"]), t),
            ("POST", f"{R}/pulls/{p}/reviews", self.h_create_review, t),
            ("PUT", f"{R}/pulls/{p}/reviews/{{review_id:\\d+}}/dismissals", self.h_dismiss_review, t),
            ("POST", f"{R}/check-runs", self.h_create_check_run, t),
            ("GET", f"{R}/check-runs/{cr}", self.h_check_run, t),
            ("PATCH", f"{R}/check-runs/{cr}", self.h_check_run, t),
            ("GET", f"{R}/check-runs/{cr}/annotations", lambda rq: self._page(
                rq, self._get(rq[REPO].check_runs, self._num(rq, "check_run_id"))["__annotations"]), t),
            ("GET", f"{R}/check-suites/{{check_suite_id:\\d+}}", lambda rq: self.suite_json(
                rq[REPO], self._get(rq[REPO].check_suites, self._num(rq, "check_suite_id"))), t),
            ("GET", f"{R}/check-suites/{{check_suite_id:\\d+}}/check-runs", self.h_check_runs, t),
            ("GET", f"{R}/commits/{{ref}}/check-runs", self.h_check_runs, t),
            ("GET", f"{R}/actions/runs", self.h_runs, t),
            ("GET", f"{R}/actions/runs/{run}", lambda rq: self._get(rq[REPO].runs, self._num(rq, "run_id")), t),
            ("GET", f"{R}/actions/runs/{run}/jobs", self.h_jobs, t),
            ("GET", f"{R}/actions/jobs/{job}", lambda rq: self._get(rq[REPO].jobs, self._num(rq, "job_id")), t),
            ("GET", f"{R}/actions/jobs/{job}/logs", self.h_job_logs, t),
            ("GET", f"{R}/git/ref/{{ref:.+}}", self.h_ref, t),
            ("GET", f"{R}/git/refs/{{ref:.+}}", self.h_ref, t),
            ("GET", f"{R}/git/matching-refs/{{ref:.*}}", lambda rq: [self.ref_json(rq[REPO], r) for r in sorted(
                rq[REPO].refs) if r.startswith("refs/" + rq.match_info["ref"])], t),
            ("POST", f"{R}/git/refs", self.h_create_ref, t),
            ("PATCH", f"{R}/git/refs/{{ref:.+}}", self.h_update_ref, t),
            ("POST", f"{R}/git/blobs", self.h_create_blob, t),
            ("GET", f"{R}/git/blobs/{{file_sha}}", self.h_blob, t),
            ("POST", f"{R}/git/trees", self.h_create_tree, t),
            ("GET", f"{R}/git/trees/{{tree_sha:.+}}", self.h_tree, t),
            ("POST", f"{R}/git/commits", self.h_create_commit, t),
            ("GET", f"{R}/git/commits/{{commit_sha}}",
             lambda rq: self.git_commit_json(rq[REPO], rq.match_info["commit_sha"]), t),
            ("GET", f"{R}/contents", self.h_contents, t),
            ("GET", f"{R}/contents/{{path:.*}}", self.h_contents, t),  # "contents/" is the root, as on GitHub
            ("PUT", f"{R}/contents/{{path:.+}}", self.h_put_contents, t),
            ("GET", f"{R}/commits", self.h_commits, t),
            ("GET", f"{R}/commits/{{ref:.+}}", self.h_commit, t),
            ("GET", f"{R}/compare/{{basehead:.+}}", self.h_compare, t),
            ("GET", "/search/issues", self.h_search_issues, t),
            ("GET", "/search/code", self.h_search_code, t),
        ]

    # ---- app & installations -----------------------------------------------------------
    def h_token(self, rq: web.Request) -> Any:
        inst = self._get(self._installations, self._num(rq, "installation_id"))
        token = self.mint_token(inst["id"])
        self.tokens_issued += 1
        return {"token": token, "expires_at": iso(self._tokens[token][1]), "permissions": inst["permissions"],
                "repository_selection": "all"}, 201

    def h_repo_installation(self, rq: web.Request) -> Any:
        repo = self._get(self._repos, f"{rq.match_info['owner']}/{rq.match_info['repo']}".lower())
        return self._must(next((i for i in self._installations.values() if self._owns(i["id"], repo)), None))

    def h_deliveries(self, rq: web.Request) -> Any:
        """Newest first, paginated by an opaque ``cursor`` in the Link header, as GitHub does here."""
        items = sorted(self._deliveries.values(), key=lambda d: d["id"], reverse=True)
        per = min(max(self._qint(rq, "per_page", 30), 1), 100)
        if cursor := rq.query.get("cursor"):
            if not (m := re.fullmatch(r"v1_(\d+)", cursor)):
                raise invalid("Query", "cursor", "invalid")
            items = [d for d in items if d["id"] <= int(m[1])]
        more = len(items) > per and rq.url.update_query(per_page=per, cursor=f"v1_{items[per]['id']}")
        return self._json(rq, items[:per], headers={"Link": f'<{more}>; rel="next"'} if more else None)

    def h_redeliver(self, rq: web.Request) -> Any:
        d = self._get(self._deliveries, self._num(rq, "delivery_id"))
        new = self.add_hook_delivery(event=d["event"], action=d["action"], guid=d["guid"], redelivery=True,
                                     installation_id=d["installation_id"], repository_id=d["repository_id"])
        self._write("redelivery", None, None, {"delivery_id": d["id"], "guid": d["guid"], "new_id": new["id"]})
        return {}, 202

    def h_manifest(self, rq: web.Request) -> Any:
        app = self._get(self._manifests, rq.match_info["code"])
        del self._manifests[rq.match_info["code"]]  # codes are single-use
        if app["pem"] is None:
            from cryptography.hazmat.primitives import serialization as ser
            from cryptography.hazmat.primitives.asymmetric import rsa
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            app["pem"] = key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL,
                                           ser.NoEncryption()).decode()
            if app["id"] == self.app_id:
                self.app_public_key_pem = key.public_key().public_bytes(ser.Encoding.PEM,
                                                                        ser.PublicFormat.SubjectPublicKeyInfo)
        self._write("manifest_conversion", None, None, {"code": rq.match_info["code"], "id": app["id"]})
        return app, 201

    # ---- issues, comments, labels, reactions ---------------------------------------------
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

    # ---- pulls -----------------------------------------------------------------------
    def _pull(self, rq: web.Request) -> dict:
        return self.get_issue(rq[REPO], self._num(rq, "pull_number"), pull=True)

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
        rid = self._new_id()
        review = {"id": rid, "node_id": node_id("PRR", rid), "user": self.user(self.bot_login),
                  "body": b.get("body") or "", "state": states[event], "author_association": "NONE",
                  "html_url": f"{issue['html_url']}#pullrequestreview-{rid}",
                  "_links": {"html": {"href": f"{issue['html_url']}#pullrequestreview-{rid}"},
                             "pull_request": {"href": issue["pull_request"]["url"]}},
                  "pull_request_url": issue["pull_request"]["url"], "submitted_at": iso() if event else None,
                  "commit_id": b.get("commit_id") or self.pull_head_sha(issue), "__comments": b.get("comments") or []}
        issue["__pull"]["reviews"].append(review)
        self._write("review", repo, issue["number"], b | {"id": rid})
        return review

    def h_dismiss_review(self, rq: web.Request) -> Any:
        """Only an APPROVED or CHANGES_REQUESTED review can be dismissed, with a message, as on GitHub."""
        repo, b, issue = rq[REPO], self._body(rq), self._pull(rq)
        review = next((r for r in issue["__pull"]["reviews"] if r["id"] == self._num(rq, "review_id")), None)
        if review is None:
            raise ApiError(404, "Not Found")
        if not isinstance(b.get("message"), str) or not b["message"]:
            raise invalid("PullRequestReview", "message")
        if review["state"] not in ("APPROVED", "CHANGES_REQUESTED"):
            raise ApiError(422, "Can not dismiss a commented pull request review")
        review["state"] = "DISMISSED"
        self._write("review_dismissal", repo, issue["number"], {"review_id": review["id"], "message": b["message"]})
        return public(review)

    # ---- checks & Actions -------------------------------------------------------------
    def h_create_check_run(self, rq: web.Request) -> Any:
        repo, b = rq[REPO], self._body(rq)
        run = self.make_check_run(repo, b)
        self._write("check_run", repo, None, b | {"id": run["id"]})
        return run, 201

    def h_check_run(self, rq: web.Request) -> Any:
        repo = rq[REPO]
        run = self._get(repo.check_runs, self._num(rq, "check_run_id"))
        if rq.method == "PATCH":
            self.update_check_run(repo, run, b := self._body(rq))
            self._write("check_run_edit", repo, None, b | {"id": run["id"]})
        return run

    def h_check_runs(self, rq: web.Request) -> Any:
        """Check runs of a suite, or of a commit ref; check_name and status filters."""
        repo, q = rq[REPO], rq.query
        if "check_suite_id" in rq.match_info:
            sid = self._get(repo.check_suites, self._num(rq, "check_suite_id"))["id"]

            def match(r: dict) -> bool:
                return bool(r["check_suite"]["id"] == sid)
        else:
            ref = rq.match_info["ref"]
            if (sha := self.resolve(repo, ref) or (ref if HEX40.fullmatch(ref) else None)) is None:
                raise ApiError(422, f"No commit found for SHA: {ref}")

            def match(r: dict) -> bool:
                return bool(r["head_sha"] == sha)
        runs = [r for r in sorted(repo.check_runs.values(), key=lambda r: r["id"], reverse=True) if match(r)
                and q.get("check_name", r["name"]) == r["name"] and q.get("status", r["status"]) == r["status"]]
        return self._page(rq, runs, key="check_runs")

    def h_runs(self, rq: web.Request) -> Any:
        repo, q = rq[REPO], rq.query
        runs = [r for r in sorted(repo.runs.values(), key=lambda r: r["id"], reverse=True)
                if all(q.get(k, r[f]) == r[f] for k, f in (("branch", "head_branch"), ("event", "event"),
                                                          ("head_sha", "head_sha")))
                and q.get("status") in (None, r["status"], r["conclusion"])]
        return self._page(rq, runs, key="workflow_runs")

    def h_jobs(self, rq: web.Request) -> Any:
        repo = rq[REPO]
        rid = self._get(repo.runs, self._num(rq, "run_id"))["id"]
        return self._page(rq, [j for j in repo.jobs.values() if j["run_id"] == rid], key="jobs")

    def h_job_logs(self, rq: web.Request) -> Any:
        """302 to an unauthenticated, short-lived download URL, as GitHub does."""
        repo = rq[REPO]
        job = self._get(repo.jobs, self._num(rq, "job_id"))
        url = f"{rq.scheme}://{rq.host}/_sandbox/logs/{repo.full_name}/{job['id']}?sig={secrets.token_hex(8)}"
        return web.Response(status=302, headers={"Location": url})

    def h_log_download(self, rq: web.Request) -> Any:
        repo = self._get(self._repos, f"{rq.match_info['owner']}/{rq.match_info['repo']}".lower())
        return web.Response(text=self._get(repo.jobs, self._num(rq, "job_id"))["__log"], content_type="text/plain")

    # ---- git data ---------------------------------------------------------------------
    def h_ref(self, rq: web.Request) -> Any:
        repo, ref = rq[REPO], "refs/" + rq.match_info["ref"]
        self._get(repo.refs, ref)
        return self.ref_json(repo, ref)

    def _commit_sha(self, sha: Any, message: str) -> str:
        if not isinstance(sha, str) or self._objects.get(sha, {}).get("type") != "commit":
            raise ApiError(422, message)
        return sha

    def h_create_ref(self, rq: web.Request) -> Any:
        repo, b = rq[REPO], self._body(rq)
        if not isinstance(ref := b.get("ref"), str) or not re.fullmatch(r"refs/[^/\s]+/\S+", ref):
            raise ApiError(422, "Reference name is invalid" if ref else "Invalid request.\n\n\"ref\" wasn't supplied.")
        sha = self._commit_sha(b.get("sha"), "Object does not exist")
        if ref in repo.refs:
            raise ApiError(422, "Reference already exists")
        repo.refs[ref] = sha
        self._write("ref", repo, None, {"ref": ref, "sha": sha})
        return self.ref_json(repo, ref), 201

    def h_update_ref(self, rq: web.Request) -> Any:
        repo, b, ref = rq[REPO], self._body(rq), "refs/" + rq.match_info["ref"]
        if ref not in repo.refs:
            raise ApiError(422, "Reference does not exist")
        sha = self._commit_sha(b.get("sha"), "Object does not exist")
        if not b.get("force") and repo.refs[ref] not in self.ancestors(sha):
            raise ApiError(422, "Update is not a fast forward")
        repo.refs[ref] = sha
        self._write("ref_update", repo, None, {"ref": ref, "sha": sha, "force": bool(b.get("force"))})
        return self.ref_json(repo, ref)

    def h_create_blob(self, rq: web.Request) -> Any:
        repo, b = rq[REPO], self._body(rq)
        if not isinstance(b.get("content"), str):
            raise invalid("Blob", "content")
        if (enc := b.get("encoding", "utf-8")) not in ("utf-8", "utf8", "base64"):
            raise invalid("Blob", "encoding", "invalid")
        try:
            sha = self.put_blob(base64.b64decode(b["content"]) if enc == "base64" else b["content"].encode())
        except ValueError:
            raise invalid("Blob", "content", "invalid") from None
        self._write("blob", repo, None, b | {"sha": sha})
        return {"url": f"{repo.api}/git/blobs/{sha}", "sha": sha}, 201

    def h_blob(self, rq: web.Request) -> Any:
        repo, sha = rq[REPO], rq.match_info["file_sha"]
        data = self.obj(sha, "blob")["content"]
        return {"sha": sha, "node_id": node_id("B", sha), "size": len(data), "encoding": "base64",
                "url": f"{repo.api}/git/blobs/{sha}", "content": b64_lines(data)}

    def h_create_tree(self, rq: web.Request) -> Any:
        """base_tree + entries (path, mode, type, sha | content; sha null deletes), as the Git Trees API."""
        repo, b = rq[REPO], self._body(rq)
        if not isinstance(b.get("tree"), list):
            raise invalid("Tree", "tree")
        if (base := b.get("base_tree")) and self._objects.get(base, {}).get("type") != "tree":
            raise ApiError(422, "base_tree is not a valid tree oid")
        flat = self.flatten(base) if base else {}
        for e in b["tree"]:
            path, typ, mode = str(e.get("path", "")).strip("/"), e.get("type", "blob"), e.get("mode", "100644")
            sha = self.put_blob(str(e["content"]).encode()) if e.get("content") is not None else e.get("sha")
            if sha is None or typ == "tree":
                for k in [k for k in flat if k == path or k.startswith(path + "/")]:
                    del flat[k]
            if sha is not None and typ == "tree":
                flat |= self.flatten(sha, path + "/")
            elif sha is not None:
                if typ == "blob" and self._objects.get(sha, {}).get("type") != "blob":
                    raise ApiError(422, f"tree.sha {sha} is not a valid blob")
                flat[path] = (mode, typ, sha)
        sha = self.build_tree(flat)
        self._write("tree", repo, None, {"sha": sha, "base_tree": base, "paths": [e.get("path") for e in b["tree"]]})
        return self.tree_json(repo, sha, False), 201

    def h_tree(self, rq: web.Request) -> Any:
        """A tree by sha, or the root tree of a commit sha or branch name (GitHub accepts both)."""
        repo, sha = rq[REPO], rq.match_info["tree_sha"]
        if self._objects.get(sha, {}).get("type") != "tree":
            sha = self.commit_tree(self._must(self.resolve(repo, sha)))
        return self.tree_json(repo, sha, rq.query.get("recursive") not in (None, "", "0", "false"))

    def h_create_commit(self, rq: web.Request) -> Any:
        repo, b = rq[REPO], self._body(rq)
        if not isinstance(b.get("message"), str):
            raise invalid("Commit", "message")
        tree = b.get("tree")
        if not isinstance(tree, str) or self._objects.get(tree, {}).get("type") != "tree":
            raise ApiError(422, "Tree SHA does not exist")
        parents = [self._commit_sha(p, "Parent SHA does not exist or is not a commit object")
                   for p in b.get("parents") or []]
        sha = self.put_commit(b["tree"], parents, b["message"], b.get("author"), b.get("committer"))
        self._write("commit", repo, None, {"sha": sha, "message": b["message"], "tree": b["tree"], "parents": parents})
        return self.git_commit_json(repo, sha), 201

    # ---- contents & commits -------------------------------------------------------------
    def h_contents(self, rq: web.Request) -> Any:
        """A file (base64, or raw with an Accept: ...raw header) or a directory listing."""
        repo, path = rq[REPO], rq.match_info.get("path", "").strip("/")
        ref = rq.query.get("ref") or repo.data["default_branch"]
        if (sha := self.resolve(repo, ref)) is None:
            raise ApiError(404, f"No commit found for the ref {ref}")
        e = self._must(self.lookup(self.commit_tree(sha), path))
        if e["type"] == "tree":
            return [self.content_json(repo, f"{path}/{c['path']}".lstrip("/"), c, ref, False)
                    for c in self.obj(e["sha"], "tree")["entries"]]
        if "raw" in rq.headers.get("Accept", ""):
            return web.Response(body=self.obj(e["sha"], "blob")["content"], content_type="text/plain")
        return self.content_json(repo, path, e, ref, True)

    def h_put_contents(self, rq: web.Request) -> Any:
        """Create or update one file with a commit; updating needs the current blob ``sha``, as on GitHub."""
        repo, b, path = rq[REPO], self._body(rq), rq.match_info["path"].strip("/")
        for f in ("message", "content"):
            if not isinstance(b.get(f), str):
                raise ApiError(422, f"Invalid request.\n\n\"{f}\" wasn't supplied.")
        branch = b.get("branch") or repo.data["default_branch"]
        head = self._get(repo.refs, f"refs/heads/{branch}")
        old = self.lookup(self.commit_tree(head), path)
        if old is not None and not b.get("sha"):
            raise ApiError(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
        if old is not None and b["sha"] != old["sha"]:
            raise ApiError(409, f"{path} does not match {b['sha']}")
        blob = self.put_blob(base64.b64decode(b["content"]))
        flat = self.flatten(self.commit_tree(head)) | {path: ("100644", "blob", blob)}
        sha = repo.refs[f"refs/heads/{branch}"] = self.put_commit(self.build_tree(flat), [head], b["message"],
                                                                  b.get("author"), b.get("committer"))
        self._write("contents", repo, None, {k: v for k, v in b.items() if k != "content"}
                    | {"path": path, "branch": branch, "commit": sha})
        content = self.content_json(repo, path, self._must(self.lookup(self.commit_tree(sha), path)), branch, False)
        return {"content": content, "commit": self.git_commit_json(repo, sha)}, 200 if old else 201

    def h_commits(self, rq: web.Request) -> Any:
        """Newest first from ``sha`` (branch or sha); ``path`` keeps commits that changed it."""
        repo, q = rq[REPO], rq.query
        ref = q.get("sha") or repo.data["default_branch"]
        if (head := self.resolve(repo, ref)) is None:
            raise ApiError(404, f"No commit found for SHA: {ref}")
        shas = self.history(head)
        if path := q.get("path", "").strip("/"):
            def at(s: str | None) -> dict | None:
                return self.lookup(self.commit_tree(s), path) if s else None
            shas = [s for s in shas if at(s) != at((self.obj(s, "commit")["parents"] or [None])[0])]
        return self._page(rq, shas, lambda s: self.commit_json(repo, s))

    def h_compare(self, rq: web.Request) -> Any:
        """``base...head``: status (identical, ahead, behind, diverged), the commits head has that base lacks, and
        the files changed from their merge base to head, as GitHub's three-dot comparison does."""
        repo, basehead = rq[REPO], rq.match_info["basehead"]
        base_ref, sep, head_ref = basehead.partition("...")
        if not sep:
            raise ApiError(404, "Not Found")
        base, head = self.resolve(repo, base_ref), self.resolve(repo, head_ref)
        if base is None or head is None:
            raise ApiError(404, "Not Found")
        mine, theirs = self.ancestors(head), self.ancestors(base)
        ahead = [s for s in self.history(head) if s not in theirs]
        behind = [s for s in self.history(base) if s not in mine]
        status = ("identical" if base == head else "ahead" if not behind else "behind" if not ahead else "diverged")
        merge_base = self.merge_base(base, head)
        return {"url": f"{repo.api}/compare/{basehead}", "html_url": f"https://github.com/{repo.full_name}/compare/{basehead}",
                "permalink_url": f"https://github.com/{repo.full_name}/compare/{basehead}",
                "diff_url": f"https://github.com/{repo.full_name}/compare/{basehead}.diff",
                "patch_url": f"https://github.com/{repo.full_name}/compare/{basehead}.patch",
                "base_commit": self.commit_json(repo, base), "merge_base_commit": self.commit_json(repo, merge_base),
                "status": status, "ahead_by": len(ahead), "behind_by": len(behind), "total_commits": len(ahead),
                "commits": [self.commit_json(repo, c) for c in reversed(ahead)][:250],
                "files": self.diff_files(repo, merge_base, head)[:300]}

    def h_commit(self, rq: web.Request) -> Any:
        repo, ref = rq[REPO], rq.match_info["ref"]
        if (sha := self.resolve(repo, ref)) is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return self.commit_json(repo, sha, with_files=True)

    # ---- search ---------------------------------------------------------------------------
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
