"""A sandbox GitHub: an in-memory aiohttp server speaking the REST slice the bot uses.

Lets the real gidgethub client (``base_url=sandbox.url``), the ``replay`` CLI and the
tests run the bot end to end without touching github.com.  Every request goes through
``SandboxGitHub._middleware`` (recording, fault injection, auth, JSON parsing, error
shaping); that is where an OpenAPI check belongs — route templates are GitHub's own
(``request.match_info.route.resource.canonical``, e.g. ``/repos/{owner}/{repo}/issues/{issue_number}``).

Write kinds (``SandboxGitHub.writes``; data is the request body plus ids noted):
comment, comment_edit, comment_deleted (+id) · issue, issue_edit, pull, pull_edit (+number) ·
labels (POST, data["labels"] = names sent), labels_set (PUT), label_removed (name), label_created ·
reaction (content, subject "issue"|"comment", subject_id) · review (+id) · check_run, check_run_edit (+id) ·
ref, ref_update, ref_deleted · blob, tree, commit (+sha) · contents (PUT; +commit sha) · rerun (run_id) ·
redelivery (delivery_id, guid) · manifest_conversion.  Token creation is not a write (see ``tokens_issued``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import string
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Callable

import jwt
from aiohttp import web

from .github_state import (API, DOCS, WEB, ApiError, RecordedRequest, Repo, SandboxState, Write, b64_lines,
                           custom_invalid, invalid, iso, node_id, public)

__all__ = ["SandboxGitHub", "RecordedRequest", "Write", "ApiError"]
log = logging.getLogger(__name__)
R = "/repos/{owner}/{repo}"
HEX = re.compile(r"[0-9a-f]{40}")


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    times: int
    headers: dict[str, str]
    body: dict | None
    delay: float


class SandboxGitHub(SandboxState):
    """In-memory GitHub; seed it, point the bot at ``url``, then assert on ``writes``/``requests``."""

    def __init__(self, *, app_id: int = 1, app_public_key_pem: str | bytes | None = None,
                 token_ttl: float = 3600.0, bot_login: str = "triage-lead[bot]") -> None:
        super().__init__(app_id=app_id, bot_login=bot_login)
        self.app_public_key_pem, self.token_ttl = app_public_key_pem, token_ttl
        self.requests: list[RecordedRequest] = []
        self.tokens_issued = 0
        self.url = ""
        self._tokens: dict[str, tuple[int, float, set[str] | None]] = {}
        self._faults: list[_Fault] = []
        self._auth: dict[Any, str | None] = {}
        self._runner: web.AppRunner | None = None
        self._used: dict[str, int] = {}
        self._reset = int(time.time()) + 3600

    # ---- lifecycle -----------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=50 * 2**20)
        for method, path, handler, auth in self._routes():
            self._auth[app.router.add_route(method, path, handler)] = auth
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

    async def __aenter__(self) -> "SandboxGitHub":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- test helpers --------------------------------------------------------
    def fail(self, method: str, path_pattern: str, status: int, *, times: int = 1, headers: dict | None = None,
             body: dict | None = None, delay: float = 0.0) -> None:
        """Answer the next ``times`` matching requests (method or "*", path regex fullmatch) with this
        status; headers override the usual rate-limit ones. ``times=-1``: until ``clear_faults()``."""
        self._faults.append(_Fault(method.upper(), re.compile(path_pattern), status, times,
                                   {k.lower(): str(v) for k, v in (headers or {}).items()}, body, delay))

    def clear_faults(self) -> None:
        self._faults.clear()

    def mint_token(self, installation_id: int, ttl: float | None = None) -> str:
        """An installation token without the JWT dance (for the replay CLI and tests); not counted
        in ``tokens_issued``, which counts API-created tokens only."""
        token = "ghs_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
        self._tokens[token] = (installation_id, time.time() + (self.token_ttl if ttl is None else ttl), None)
        return token

    def _resolve_urls(self, data: Any) -> Any:
        return json.loads(json.dumps(public(data)).replace(API, self.url or API))

    def issue(self, full_name: str, number: int) -> dict:
        repo = self.repo(full_name)
        return self._resolve_urls(self.issue_json(repo, self.get_issue(repo, number)))

    def pull(self, full_name: str, number: int) -> dict:
        repo = self.repo(full_name)
        return self._resolve_urls(self.pull_json(repo, self.get_pull(repo, number)))

    def comments(self, full_name: str, number: int) -> list[dict]:
        repo = self.repo(full_name)
        return self._resolve_urls([self.comment_json(repo, c) for c in sorted(
            (c for c in repo.comments.values() if c["__number"] == number), key=lambda c: c["id"])])

    def written(self, kind: str) -> list[Write]:
        return [w for w in self.writes if w.kind == kind]

    # ---- the one place every request passes through --------------------------
    @web.middleware
    async def _middleware(self, rq: web.Request, handler: Callable) -> web.StreamResponse:
        scheme, _, cred = rq.headers.get("Authorization", "").partition(" ")
        cred = cred.strip()
        kind = None if not cred else "jwt" if scheme.lower() == "bearer" and cred.count(".") == 2 else "token"
        raw = await rq.read() if rq.body_exists else b""
        parsed, bad_json = None, False
        if raw.strip():
            try:
                parsed = json.loads(raw)
            except ValueError:
                bad_json = True
        rec = RecordedRequest(rq.method, rq.path, dict(rq.query), parsed, 0, kind)
        self.requests.append(rec)
        try:
            if (fault := self._take_fault(rq.method, rq.path)) is not None:
                await asyncio.sleep(fault.delay)
                resp = self._fault_response(rq, fault)
            else:
                route = rq.match_info.route
                if rq.match_info.http_exception is not None or route not in self._auth:
                    raise ApiError(404)  # GitHub answers unknown routes and wrong methods alike
                need = self._auth[route]
                if need == "jwt":
                    self._check_jwt(cred if kind == "jwt" else None)
                elif need == "token":
                    rq["auth"] = self._check_token(cred)
                if bad_json:
                    raise ApiError(400, "Problems parsing JSON")
                rq["json"] = parsed
                # An OpenAPI request check would go here, keyed by route.resource.canonical.
                resp = await handler(rq)
        except ApiError as e:
            resp = self._json(rq, e.body(), e.status)
        except Exception as e:  # a sandbox bug: answer like GitHub would, but keep the traceback
            log.exception("sandbox handler failed for %s %s", rq.method, rq.path)
            resp = self._json(rq, {"message": f"Sandbox error: {e!r}", "documentation_url": DOCS}, 500)
        rec.status = resp.status
        self._stamp(rq, resp)
        return resp

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for f in self._faults:
            if f.method in ("*", method) and f.pattern.fullmatch(path):
                if f.times > 0:
                    f.times -= 1
                    if f.times == 0:
                        self._faults.remove(f)
                return f
        return None

    def _fault_response(self, rq: web.Request, f: _Fault) -> web.StreamResponse:
        if f.status in (204, 304):
            return web.Response(status=f.status, headers=f.headers)
        body = f.body if f.body is not None else {"message": HTTPStatus(f.status).phrase, "documentation_url": DOCS}
        return self._json(rq, body, f.status, f.headers)

    def _stamp(self, rq: web.Request, resp: web.StreamResponse) -> None:
        now = int(time.time())
        if now >= self._reset:
            self._used, self._reset = {}, now + 3600
        resource = "search" if rq.path.startswith("/search/") else "core"
        used = self._used[resource] = self._used.get(resource, 0) + 1
        limit = 30 if resource == "search" else 5000
        for k, v in {"x-ratelimit-limit": limit, "x-ratelimit-remaining": max(0, limit - used),
                     "x-ratelimit-reset": self._reset, "x-ratelimit-used": used, "x-ratelimit-resource": resource,
                     "x-github-request-id": uuid.uuid4().hex[:20].upper(),
                     "x-github-api-version-selected": "2022-11-28"}.items():
            resp.headers.setdefault(k, str(v))

    def _check_jwt(self, token: str | None) -> None:
        """Validate an app JWT the way GitHub does (RS256, iss, exp, iat, at most ~10 min lifetime)."""
        bad = ApiError(401, "A JSON web token could not be decoded")
        if not token:
            raise bad
        key = self.app_public_key_pem
        try:
            if jwt.get_unverified_header(token).get("alg") != "RS256":
                raise bad
            claims = jwt.decode(token, key, algorithms=["RS256"], options={
                "verify_signature": key is not None, "verify_exp": False, "verify_iat": False,
                "verify_nbf": False, "verify_iss": False, "verify_aud": False})
        except jwt.PyJWTError:
            raise bad from None
        now, iat, exp = time.time(), claims.get("iat"), claims.get("exp")
        if str(claims.get("iss")) != str(self.app_id):
            raise ApiError(401, "'Issuer' claim ('iss') must be an Integer matching the app id")
        if not isinstance(exp, (int, float)) or exp <= now:
            raise ApiError(401, "'Expiration time' claim ('exp') must be a numeric value representing the "
                                "future time at which the assertion expires")
        if not isinstance(iat, (int, float)) or iat > now + 60:
            raise ApiError(401, "'Issued at' claim ('iat') must be an Integer representing the time that the "
                                "assertion was issued")
        if exp - iat > 660:
            raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")

    def _check_token(self, cred: str) -> tuple[int, set[str] | None]:
        if not cred:
            raise ApiError(401, "Requires authentication")
        rec = self._tokens.get(cred)
        if rec is None or rec[1] <= time.time():
            raise ApiError(401, "Bad credentials")
        return rec[0], rec[2]

    # ---- response helpers ------------------------------------------------------
    def _json(self, rq: web.Request, data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
        if status == 204:
            return web.Response(status=204, headers=headers)
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
        """One page of ``items`` with GitHub's Link header (absolute URLs on this host)."""
        per = min(max(self._qint(rq, "per_page", 30), 1), 100)
        page = max(self._qint(rq, "page", 1), 1)
        last = max(1, -(-len(items) // per))
        chunk = [render(x) for x in items[(page - 1) * per:page * per]]
        rels = ([("next", page + 1), ("last", last)] if page < last else []) + (
            [("first", 1), ("prev", page - 1)] if page > 1 else [])
        headers = {"Link": ", ".join(f'<{rq.url.update_query(page=n)}>; rel="{r}"' for r, n in rels)} if rels else None
        data = chunk if key is None else {"total_count": len(items), **(extra or {}), key: chunk}
        return self._json(rq, data, headers=headers)

    @staticmethod
    def _body(rq: web.Request) -> dict:
        b = rq.get("json")
        if b is None:
            return {}
        if not isinstance(b, dict):
            raise ApiError(400, "Problems parsing JSON")
        return b

    @staticmethod
    def _int(rq: web.Request, key: str) -> int:
        return int(rq.match_info[key])  # routes only match \d+

    def _owns(self, inst_id: int, repo: Repo) -> bool:
        if repo.installation_id is not None:
            return repo.installation_id == inst_id
        inst = self._installations.get(inst_id)
        return inst is not None and inst["account"]["login"].lower() == repo.owner.lower()

    def _visible(self, rq: web.Request) -> list[Repo]:
        inst_id, only = rq["auth"]
        return [r for r in self._repos.values()
                if self._owns(inst_id, r) and (only is None or r.full_name.lower() in only)]

    def _r(self, rq: web.Request) -> Repo:
        """The path's repo, or 404 when missing or outside the token's installation (GitHub hides it)."""
        repo = self._repos.get(f"{rq.match_info['owner']}/{rq.match_info['repo']}".lower())
        if repo is None or repo not in self._visible(rq):
            raise ApiError(404)
        return repo

    def _inst(self, rq: web.Request) -> dict:
        if (inst := self._installations.get(self._int(rq, "installation_id"))) is None:
            raise ApiError(404)
        return inst

    def _routes(self) -> list[tuple[str, str, Callable, str | None]]:
        n, c = "{issue_number:\\d+}", "{comment_id:\\d+}"
        p = "{pull_number:\\d+}"
        t = "token"
        return [
            ("GET", "/app", self.h_app, "jwt"),
            ("GET", "/app/installations", self.h_installations, "jwt"),
            ("GET", "/app/installations/{installation_id:\\d+}", self.h_installation, "jwt"),
            ("POST", "/app/installations/{installation_id:\\d+}/access_tokens", self.h_token, "jwt"),
            ("GET", "/app/hook/deliveries", self.h_deliveries, "jwt"),
            ("GET", "/app/hook/deliveries/{delivery_id:\\d+}", self.h_delivery, "jwt"),
            ("POST", "/app/hook/deliveries/{delivery_id:\\d+}/attempts", self.h_redeliver, "jwt"),
            ("POST", "/app-manifests/{code}/conversions", self.h_manifest, None),
            ("GET", f"{R}/installation", self.h_repo_installation, "jwt"),
            ("GET", "/installation/repositories", self.h_install_repos, t),
            ("GET", "/_sandbox/logs/{owner}/{repo}/{job_id:\\d+}", self.h_log_download, None),
            ("GET", R, self.h_repo, t),
            ("GET", f"{R}/issues", self.h_issues, t),
            ("POST", f"{R}/issues", self.h_create_issue, t),
            ("GET", f"{R}/issues/{n}", self.h_issue, t),
            ("PATCH", f"{R}/issues/{n}", self.h_edit_issue, t),
            ("GET", f"{R}/issues/{n}/comments", self.h_comments, t),
            ("POST", f"{R}/issues/{n}/comments", self.h_create_comment, t),
            ("GET", f"{R}/issues/comments/{c}", self.h_comment, t),
            ("PATCH", f"{R}/issues/comments/{c}", self.h_edit_comment, t),
            ("DELETE", f"{R}/issues/comments/{c}", self.h_delete_comment, t),
            ("GET", f"{R}/issues/{n}/labels", self.h_issue_labels, t),
            ("POST", f"{R}/issues/{n}/labels", self.h_add_labels, t),
            ("PUT", f"{R}/issues/{n}/labels", self.h_add_labels, t),
            ("DELETE", f"{R}/issues/{n}/labels/{{name}}", self.h_remove_label, t),
            ("GET", f"{R}/labels", self.h_labels, t),
            ("POST", f"{R}/labels", self.h_create_label, t),
            ("GET", f"{R}/labels/{{name}}", self.h_label, t),
            ("GET", f"{R}/issues/comments/{c}/reactions", self.h_reactions, t),
            ("POST", f"{R}/issues/comments/{c}/reactions", self.h_react, t),
            ("GET", f"{R}/issues/{n}/reactions", self.h_reactions, t),
            ("POST", f"{R}/issues/{n}/reactions", self.h_react, t),
            ("GET", f"{R}/collaborators/{{username}}/permission", self.h_permission, t),
            ("GET", f"{R}/pulls", self.h_pulls, t),
            ("POST", f"{R}/pulls", self.h_create_pull, t),
            ("GET", f"{R}/pulls/{p}", self.h_pull, t),
            ("PATCH", f"{R}/pulls/{p}", self.h_edit_issue, t),
            ("GET", f"{R}/pulls/{p}/files", self.h_pull_files, t),
            ("GET", f"{R}/pulls/{p}/commits", self.h_pull_commits, t),
            ("GET", f"{R}/pulls/{p}/reviews", self.h_reviews, t),
            ("POST", f"{R}/pulls/{p}/reviews", self.h_create_review, t),
            ("GET", f"{R}/pulls/{p}/comments", self.h_review_comments, t),
            ("POST", f"{R}/check-runs", self.h_create_check_run, t),
            ("GET", f"{R}/check-runs/{{check_run_id:\\d+}}", self.h_check_run, t),
            ("PATCH", f"{R}/check-runs/{{check_run_id:\\d+}}", self.h_check_run, t),
            ("GET", f"{R}/check-runs/{{check_run_id:\\d+}}/annotations", self.h_annotations, t),
            ("GET", f"{R}/check-suites/{{check_suite_id:\\d+}}", self.h_check_suite, t),
            ("GET", f"{R}/check-suites/{{check_suite_id:\\d+}}/check-runs", self.h_check_runs, t),
            ("GET", f"{R}/commits/{{ref}}/check-runs", self.h_check_runs, t),
            ("GET", f"{R}/actions/runs", self.h_runs, t),
            ("GET", f"{R}/actions/runs/{{run_id:\\d+}}", self.h_run, t),
            ("GET", f"{R}/actions/runs/{{run_id:\\d+}}/jobs", self.h_jobs, t),
            ("POST", f"{R}/actions/runs/{{run_id:\\d+}}/rerun", self.h_rerun, t),
            ("POST", f"{R}/actions/runs/{{run_id:\\d+}}/rerun-failed-jobs", self.h_rerun, t),
            ("GET", f"{R}/actions/jobs/{{job_id:\\d+}}", self.h_job, t),
            ("GET", f"{R}/actions/jobs/{{job_id:\\d+}}/logs", self.h_job_logs, t),
            ("GET", f"{R}/git/ref/{{ref:.+}}", self.h_ref, t),
            ("GET", f"{R}/git/matching-refs/{{ref:.*}}", self.h_matching_refs, t),
            ("POST", f"{R}/git/refs", self.h_create_ref, t),
            ("GET", f"{R}/git/refs/{{ref:.+}}", self.h_ref, t),
            ("PATCH", f"{R}/git/refs/{{ref:.+}}", self.h_update_ref, t),
            ("DELETE", f"{R}/git/refs/{{ref:.+}}", self.h_delete_ref, t),
            ("POST", f"{R}/git/blobs", self.h_create_blob, t),
            ("GET", f"{R}/git/blobs/{{file_sha}}", self.h_blob, t),
            ("POST", f"{R}/git/trees", self.h_create_tree, t),
            ("GET", f"{R}/git/trees/{{tree_sha:.+}}", self.h_tree, t),
            ("POST", f"{R}/git/commits", self.h_create_commit, t),
            ("GET", f"{R}/git/commits/{{commit_sha}}", self.h_git_commit, t),
            ("GET", f"{R}/contents", self.h_contents, t),
            ("GET", f"{R}/contents/{{path:.+}}", self.h_contents, t),
            ("PUT", f"{R}/contents/{{path:.+}}", self.h_put_contents, t),
            ("GET", f"{R}/commits", self.h_commits, t),
            ("GET", f"{R}/commits/{{ref:.+}}", self.h_commit, t),
            ("GET", f"{R}/compare/{{basehead:.+}}", self.h_compare, t),
            ("GET", "/search/issues", self.h_search_issues, t),
            ("GET", "/search/code", self.h_search_code, t),
        ]

    # ---- app & installations -------------------------------------------------
    async def h_app(self, rq: web.Request) -> web.Response:
        return self._json(rq, self.app_info | {"installations_count": len(self._installations)})

    async def h_installations(self, rq: web.Request) -> web.Response:
        return self._page(rq, list(self._installations.values()))

    async def h_installation(self, rq: web.Request) -> web.Response:
        return self._json(rq, self._inst(rq))

    async def h_token(self, rq: web.Request) -> web.Response:
        inst, b = self._inst(rq), self._body(rq)
        names, ids = b.get("repositories") or [], b.get("repository_ids") or []
        only = None
        if names or ids:
            mine = [r for r in self._repos.values() if self._owns(inst["id"], r)]
            picked = [r for r in mine if r.data["name"] in names or r.data["id"] in ids]
            if len(picked) < len(names) + len(ids):
                raise ApiError(422, "There is at least one repository that does not exist or is not accessible "
                                    "to the parent installation.")
            only = {r.full_name.lower() for r in picked}
        token = self.mint_token(inst["id"])
        self._tokens[token] = (*self._tokens[token][:2], only)
        self.tokens_issued += 1
        data = {"token": token, "expires_at": iso(self._tokens[token][1]),
                "permissions": b.get("permissions") or inst["permissions"],
                "repository_selection": "selected" if only else "all"}
        if only:
            data["repositories"] = [self.repo_json(self._repos[f]) for f in sorted(only)]
        return self._json(rq, data, 201)

    async def h_repo_installation(self, rq: web.Request) -> web.Response:
        repo = self._repos.get(f"{rq.match_info['owner']}/{rq.match_info['repo']}".lower())
        for inst in self._installations.values():
            if repo is not None and self._owns(inst["id"], repo):
                return self._json(rq, inst)
        raise ApiError(404)

    async def h_install_repos(self, rq: web.Request) -> web.Response:
        return self._page(rq, self._visible(rq), self.repo_json, "repositories")

    async def h_deliveries(self, rq: web.Request) -> web.Response:
        items = sorted(self._deliveries.values(), key=lambda d: d["id"], reverse=True)
        per = min(max(self._qint(rq, "per_page", 30), 1), 100)
        if cursor := rq.query.get("cursor"):
            try:
                start = int(cursor.removeprefix("v1_"))
            except ValueError:
                raise invalid("Query", "cursor", "invalid") from None
            items = [d for d in items if d["id"] <= start]
        headers = None
        if len(items) > per:
            nxt = rq.url.update_query(per_page=per, cursor=f"v1_{items[per]['id']}")
            headers = {"Link": f'<{nxt}>; rel="next"'}
        return self._json(rq, items[:per], headers=headers)

    def _delivery(self, rq: web.Request) -> dict:
        if (d := self._deliveries.get(self._int(rq, "delivery_id"))) is None:
            raise ApiError(404)
        return d

    async def h_delivery(self, rq: web.Request) -> web.Response:
        d = self._delivery(rq)
        return self._json(rq, d | {"url": "", "request": {"headers": {"X-GitHub-Event": d["event"]},
                                                          "payload": d["__payload"]},
                                   "response": {"headers": {}, "payload": ""}})

    async def h_redeliver(self, rq: web.Request) -> web.Response:
        d = self._delivery(rq)
        new = self.add_hook_delivery(event=d["event"], action=d["action"], guid=d["guid"], redelivery=True,
                                     installation_id=d["installation_id"], repository_id=d["repository_id"],
                                     payload=d["__payload"])
        self._write("redelivery", None, None, {"delivery_id": d["id"], "guid": d["guid"], "new_id": new["id"]})
        return self._json(rq, {}, 202)

    async def h_manifest(self, rq: web.Request) -> web.Response:
        app = self._manifests.pop(rq.match_info["code"], None)  # codes are single-use
        if app is None:
            raise ApiError(404)
        if app["pem"] is None:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            app["pem"] = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()).decode()
            if app["id"] == self.app_id:  # the sandbox now knows the new app's key, as GitHub would
                self.app_public_key_pem = key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self._write("manifest_conversion", None, None, {"code": rq.match_info["code"], "id": app["id"]})
        return self._json(rq, app, 201)

    # ---- repos, issues, comments ----------------------------------------------
    async def h_repo(self, rq: web.Request) -> web.Response:
        return self._json(rq, self.repo_json(self._r(rq)))

    async def h_issues(self, rq: web.Request) -> web.Response:
        repo, q = self._r(rq), rq.query
        state = q.get("state", "open")
        want = {l.strip().lower() for l in q.get("labels", "").split(",") if l.strip()}
        items = [i for i in sorted(repo.issues.values(), key=lambda i: i["number"], reverse=q.get("direction") != "asc")
                 if state in ("all", i["state"]) and want <= {l["name"].lower() for l in i["labels"]}
                 and q.get("creator", i["user"]["login"]).lower() == i["user"]["login"].lower()]
        return self._page(rq, items, lambda i: self.issue_json(repo, i))

    @staticmethod
    def _names(labels: Any) -> list[str]:
        if isinstance(labels, dict):
            labels = labels.get("labels")
        if not isinstance(labels, list):
            raise invalid("Label", "labels")
        return [l["name"] if isinstance(l, dict) else str(l) for l in labels]

    async def h_create_issue(self, rq: web.Request) -> web.Response:
        repo, b = self._r(rq), self._body(rq)
        if b.get("title") in (None, ""):
            raise invalid("Issue", "title")
        assignees = b.get("assignees") or ([b["assignee"]] if b.get("assignee") else [])
        issue = self._make_issue(repo, title=str(b["title"]), body=b.get("body"), user=self.bot_login,
                                 labels=self._names(b.get("labels") or []), assignees=assignees)
        self._write("issue", repo, issue["number"], b | {"number": issue["number"]})
        return self._json(rq, self.issue_json(repo, issue), 201)

    async def h_issue(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        return self._json(rq, self.issue_json(repo, self.get_issue(repo, self._int(rq, "issue_number"))))

    async def h_edit_issue(self, rq: web.Request) -> web.Response:
        """PATCH issues/{n} and pulls/{n}: title, body, state, labels, assignees (+ base, draft for PRs)."""
        repo, b, is_pull = self._r(rq), self._body(rq), "pull_number" in rq.match_info
        n = self._int(rq, "pull_number" if is_pull else "issue_number")
        issue = self.get_pull(repo, n) if is_pull else self.get_issue(repo, n)
        if "title" in b and not b["title"]:
            raise invalid("Issue", "title")
        if b.get("state") not in (None, "open", "closed"):
            raise invalid("Issue", "state", "invalid")
        if is_pull and "base" in b and f"refs/heads/{b['base']}" not in repo.refs:
            raise invalid("PullRequest", "base", "invalid")
        issue.update({k: b[k] for k in ("title", "body") if k in b})
        if "state" in b and b["state"] != issue["state"]:
            closed = b["state"] == "closed"
            issue.update(state=b["state"], closed_at=iso() if closed else None,
                         state_reason=b.get("state_reason", "completed" if closed else "reopened"))
        if "labels" in b:
            issue["labels"] = [self.label(repo, name) for name in self._names(b["labels"])]
        if "assignees" in b:
            issue["assignees"] = [self.user(a) for a in b["assignees"] or []]
            issue["assignee"] = (issue["assignees"] or [None])[0]
        if is_pull:
            issue["__pull"].update({k: b[k] for k in ("base", "draft") if k in b})
            if "base" in b:
                issue["__pull"]["base_ref"] = b["base"]
        issue["updated_at"] = iso()
        self._write("pull_edit" if is_pull else "issue_edit", repo, n, b)
        return self._json(rq, self.pull_json(repo, issue) if is_pull else self.issue_json(repo, issue))

    async def h_comments(self, rq: web.Request) -> web.Response:
        repo, n = self._r(rq), self._int(rq, "issue_number")
        self.get_issue(repo, n)
        since = rq.query.get("since", "")
        items = sorted((c for c in repo.comments.values() if c["__number"] == n and c["updated_at"] >= since),
                       key=lambda c: c["id"])
        return self._page(rq, items, lambda c: self.comment_json(repo, c))

    async def h_create_comment(self, rq: web.Request) -> web.Response:
        repo, b, n = self._r(rq), self._body(rq), self._int(rq, "issue_number")
        issue = self.get_issue(repo, n)
        if not isinstance(b.get("body"), str) or not b["body"]:
            raise invalid("IssueComment", "body")
        comment = self._make_comment(repo, issue, b["body"], self.bot_login, "Bot")
        self._write("comment", repo, n, {"id": comment["id"], "body": b["body"]})
        return self._json(rq, self.comment_json(repo, comment), 201)

    def _comment(self, rq: web.Request, repo: Repo) -> dict:
        if (c := repo.comments.get(self._int(rq, "comment_id"))) is None:
            raise ApiError(404)
        return c

    async def h_comment(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        return self._json(rq, self.comment_json(repo, self._comment(rq, repo)))

    async def h_edit_comment(self, rq: web.Request) -> web.Response:
        repo, b = self._r(rq), self._body(rq)
        c = self._comment(rq, repo)
        if not isinstance(b.get("body"), str) or not b["body"]:
            raise invalid("IssueComment", "body")
        c.update(body=b["body"], updated_at=iso())
        self._write("comment_edit", repo, c["__number"], {"id": c["id"], "body": b["body"]})
        return self._json(rq, self.comment_json(repo, c))

    async def h_delete_comment(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        c = repo.comments.pop(self._comment(rq, repo)["id"])
        self._write("comment_deleted", repo, c["__number"], {"id": c["id"]})
        return self._json(rq, None, 204)

    # ---- labels, reactions, permissions ----------------------------------------
    async def h_issue_labels(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        return self._page(rq, self.get_issue(repo, self._int(rq, "issue_number"))["labels"])

    async def h_add_labels(self, rq: web.Request) -> web.Response:
        """POST adds (creating unknown repo labels, as GitHub does); PUT replaces."""
        repo, n = self._r(rq), self._int(rq, "issue_number")
        issue, names = self.get_issue(repo, n), self._names(rq["json"] if rq["json"] is not None else [])
        if rq.method == "PUT":
            issue["labels"] = []
        have = {l["name"].lower() for l in issue["labels"]}
        issue["labels"] += [self.label(repo, x) for x in dict.fromkeys(names) if x.lower() not in have]
        self._write("labels_set" if rq.method == "PUT" else "labels", repo, n, {"labels": names})
        return self._json(rq, issue["labels"])

    async def h_remove_label(self, rq: web.Request) -> web.Response:
        repo, n, name = self._r(rq), self._int(rq, "issue_number"), rq.match_info["name"]
        issue = self.get_issue(repo, n)
        keep = [l for l in issue["labels"] if l["name"].lower() != name.lower()]
        if len(keep) == len(issue["labels"]):
            raise ApiError(404, "Label does not exist")
        issue["labels"] = keep
        self._write("label_removed", repo, n, {"name": name})
        return self._json(rq, keep)

    async def h_labels(self, rq: web.Request) -> web.Response:
        return self._page(rq, list(self._r(rq).labels.values()))

    async def h_label(self, rq: web.Request) -> web.Response:
        if (lab := self._r(rq).labels.get(rq.match_info["name"].lower())) is None:
            raise ApiError(404)
        return self._json(rq, lab)

    async def h_create_label(self, rq: web.Request) -> web.Response:
        repo, b = self._r(rq), self._body(rq)
        if not b.get("name"):
            raise invalid("Label", "name")
        if b["name"].lower() in repo.labels:
            raise invalid("Label", "name", "already_exists")
        lab = self.label(repo, b["name"], (b.get("color") or "ededed").lstrip("#"), b.get("description"))
        self._write("label_created", repo, None, b)
        return self._json(rq, lab, 201)

    def _reaction_subject(self, rq: web.Request, repo: Repo) -> tuple[str, int]:
        if "comment_id" in rq.match_info:
            return "comment", self._comment(rq, repo)["id"]
        return "issue", self.get_issue(repo, self._int(rq, "issue_number"))["number"]

    async def h_reactions(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        items = repo.reactions.get(self._reaction_subject(rq, repo), [])
        return self._page(rq, [r for r in items if rq.query.get("content", r["content"]) == r["content"]])

    async def h_react(self, rq: web.Request) -> web.Response:
        """201 for a new reaction, 200 when this user already left the same one."""
        repo, b = self._r(rq), self._body(rq)
        subject, key = self._reaction_subject(rq, repo)
        reaction, created = self.react(repo, subject, key, b.get("content", ""), self.bot_login)
        if created:
            number = key if subject == "issue" else repo.comments[key]["__number"]
            self._write("reaction", repo, number, {"content": b["content"], "subject": subject, "subject_id": key})
        return self._json(rq, reaction, 201 if created else 200)

    async def h_permission(self, rq: web.Request) -> web.Response:
        return self._json(rq, self.permission_json(self._r(rq), rq.match_info["username"]))

    # ---- pulls -----------------------------------------------------------------
    async def h_pull(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        return self._json(rq, self.pull_json(repo, self.get_pull(repo, self._int(rq, "pull_number"))))

    async def h_pulls(self, rq: web.Request) -> web.Response:
        repo, q = self._r(rq), rq.query
        state = q.get("state", "open")

        def keep(i: dict) -> bool:
            p = i["__pull"]
            head = f"{p['head_repo'].split('/')[0]}:{p['head_ref']}".lower()
            return (state in ("all", i["state"]) and q.get("head", head).lower() == head
                    and q.get("base", p["base_ref"]) == p["base_ref"])
        items = [i for i in sorted(repo.issues.values(), key=lambda i: i["number"], reverse=q.get("direction") != "asc")
                 if "__pull" in i and keep(i)]
        return self._page(rq, items, lambda i: self.pull_json(repo, i))

    async def h_create_pull(self, rq: web.Request) -> web.Response:
        repo, b = self._r(rq), self._body(rq)
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
        for i in repo.issues.values():
            p = i.get("__pull")
            if p and i["state"] == "open" and p["head_repo"] == hrepo.full_name and p["head_ref"] == branch:
                raise custom_invalid("PullRequest", f"A pull request already exists for {owner}:{branch}.")
        head_sha, base_sha = hrepo.refs[f"refs/heads/{branch}"], repo.refs[f"refs/heads/{b['base']}"]
        if head_sha in self.ancestors(base_sha):
            raise custom_invalid("PullRequest", f"No commits between {b['base']} and {branch}")
        issue = self._make_issue(repo, title=b["title"], body=b.get("body"), user=self.bot_login, user_type="Bot")
        self._attach_pull(repo, issue, branch, head_sha, hrepo, b["base"], base_sha, bool(b.get("draft")), None)
        self._write("pull", repo, issue["number"], b | {"number": issue["number"]})
        return self._json(rq, self.pull_json(repo, issue), 201)

    async def h_pull_files(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        return self._page(rq, self.pull_files(repo, self.get_pull(repo, self._int(rq, "pull_number"))))

    async def h_pull_commits(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        issue = self.get_pull(repo, self._int(rq, "pull_number"))
        base = self.ancestors(issue["__pull"]["base_sha"])
        shas = [s for s in reversed(self.history(self.pull_head_sha(issue))) if s not in base]
        return self._page(rq, shas, lambda s: self.commit_json(repo, s))

    async def h_reviews(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        return self._page(rq, self.get_pull(repo, self._int(rq, "pull_number"))["__pull"]["reviews"])

    async def h_create_review(self, rq: web.Request) -> web.Response:
        repo, b, n = self._r(rq), self._body(rq), self._int(rq, "pull_number")
        issue = self.get_pull(repo, n)
        event = b.get("event")
        states = {"APPROVE": "APPROVED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED", None: "PENDING"}
        if event not in states:
            raise invalid("PullRequestReview", "event", "invalid")
        if event in ("REQUEST_CHANGES", "COMMENT") and not b.get("body") and not b.get("comments"):
            raise ApiError(422, "Unprocessable Entity", [f"Body is required when using event {event}"])
        if event in ("APPROVE", "REQUEST_CHANGES") and issue["user"]["login"].lower() == self.bot_login.lower():
            verb = "approve" if event == "APPROVE" else "request changes on"
            raise ApiError(422, "Unprocessable Entity", [f"Review Can not {verb} your own pull request"])
        rid = self._new_id()
        review = {"id": rid, "node_id": node_id("PRR", rid), "user": self.user(self.bot_login),
                  "body": b.get("body") or "", "state": states[event],
                  "html_url": f"{issue['html_url']}#pullrequestreview-{rid}",
                  "pull_request_url": issue["pull_request"]["url"], "author_association": "NONE",
                  "commit_id": b.get("commit_id") or self.pull_head_sha(issue),
                  "submitted_at": iso() if event else None}
        issue["__pull"]["reviews"].append(review)
        for c in b.get("comments") or []:
            cid = self._new_id()
            repo.review_comments[cid] = {
                "id": cid, "node_id": node_id("PRRC", cid), "pull_request_review_id": rid, "path": c.get("path"),
                "line": c.get("line"), "side": c.get("side", "RIGHT"), "body": c.get("body"),
                "commit_id": review["commit_id"], "user": review["user"], "created_at": iso(), "updated_at": iso(),
                "url": f"{repo.api}/pulls/comments/{cid}", "html_url": f"{issue['html_url']}#discussion_r{cid}",
                "pull_request_url": review["pull_request_url"], "diff_hunk": "", "__number": n}
        self._write("review", repo, n, b | {"id": rid})
        return self._json(rq, review)

    async def h_review_comments(self, rq: web.Request) -> web.Response:
        repo, n = self._r(rq), self._int(rq, "pull_number")
        self.get_pull(repo, n)
        return self._page(rq, sorted((c for c in repo.review_comments.values() if c["__number"] == n),
                                     key=lambda c: c["id"]))

    # ---- checks & Actions ------------------------------------------------------
    async def h_create_check_run(self, rq: web.Request) -> web.Response:
        repo, b = self._r(rq), self._body(rq)
        run = self.make_check_run(repo, b)
        self._write("check_run", repo, None, b | {"id": run["id"]})
        return self._json(rq, run, 201)

    async def h_check_run(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        if (run := repo.check_runs.get(self._int(rq, "check_run_id"))) is None:
            raise ApiError(404)
        if rq.method == "PATCH":
            b = self._body(rq)
            self.update_check_run(repo, run, b)
            self._write("check_run_edit", repo, None, b | {"id": run["id"]})
        return self._json(rq, run)

    async def h_annotations(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        if (run := repo.check_runs.get(self._int(rq, "check_run_id"))) is None:
            raise ApiError(404)
        return self._page(rq, run["__annotations"])

    async def h_check_suite(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        if (suite := repo.check_suites.get(self._int(rq, "check_suite_id"))) is None:
            raise ApiError(404)
        return self._json(rq, self.suite_json(repo, suite))

    async def h_check_runs(self, rq: web.Request) -> web.Response:
        """Check runs of a suite, or of a commit ref."""
        repo, q = self._r(rq), rq.query
        if "check_suite_id" in rq.match_info:
            sid = self._int(rq, "check_suite_id")
            if sid not in repo.check_suites:
                raise ApiError(404)
            match = lambda r: r["check_suite"]["id"] == sid
        else:
            ref = rq.match_info["ref"]
            sha = self.resolve(repo, ref) or (ref if HEX.fullmatch(ref) else None)
            if sha is None:
                raise ApiError(422, f"No commit found for SHA: {ref}")
            match = lambda r: r["head_sha"] == sha
        runs = [r for r in sorted(repo.check_runs.values(), key=lambda r: r["id"], reverse=True) if match(r)
                and q.get("check_name", r["name"]) == r["name"] and q.get("status", r["status"]) == r["status"]]
        return self._page(rq, runs, key="check_runs")

    async def h_runs(self, rq: web.Request) -> web.Response:
        repo, q = self._r(rq), rq.query
        runs = [r for r in sorted(repo.runs.values(), key=lambda r: r["id"], reverse=True)
                if q.get("branch", r["head_branch"]) == r["head_branch"] and q.get("event", r["event"]) == r["event"]
                and q.get("head_sha", r["head_sha"]) == r["head_sha"]
                and q.get("status") in (None, r["status"], r["conclusion"])]
        return self._page(rq, runs, key="workflow_runs")

    def _run(self, rq: web.Request, repo: Repo) -> dict:
        if (run := repo.runs.get(self._int(rq, "run_id"))) is None:
            raise ApiError(404)
        return run

    async def h_run(self, rq: web.Request) -> web.Response:
        return self._json(rq, self._run(rq, self._r(rq)))

    async def h_jobs(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        rid = self._run(rq, repo)["id"]
        return self._page(rq, [j for j in repo.jobs.values() if j["run_id"] == rid], key="jobs")

    async def h_rerun(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        run = self._run(rq, repo)
        self._write("rerun", repo, None, {"run_id": run["id"], "failed_only": rq.path.endswith("failed-jobs")})
        return self._json(rq, {}, 201)

    def _job(self, rq: web.Request, repo: Repo) -> dict:
        if (job := repo.jobs.get(self._int(rq, "job_id"))) is None:
            raise ApiError(404)
        return job

    async def h_job(self, rq: web.Request) -> web.Response:
        return self._json(rq, self._job(rq, self._r(rq)))

    async def h_job_logs(self, rq: web.Request) -> web.Response:
        """302 to a short-lived, unauthenticated download URL, as GitHub does."""
        repo = self._r(rq)
        job = self._job(rq, repo)
        url = f"{rq.scheme}://{rq.host}/_sandbox/logs/{repo.full_name}/{job['id']}?sig={secrets.token_hex(8)}"
        return web.Response(status=302, headers={"Location": url})

    async def h_log_download(self, rq: web.Request) -> web.Response:
        repo = self._repos.get(f"{rq.match_info['owner']}/{rq.match_info['repo']}".lower())
        if repo is None:
            raise ApiError(404)
        return web.Response(text=self._job(rq, repo)["__log"], content_type="text/plain")

    # ---- git data --------------------------------------------------------------
    async def h_ref(self, rq: web.Request) -> web.Response:
        repo, ref = self._r(rq), "refs/" + rq.match_info["ref"]
        if ref not in repo.refs:
            raise ApiError(404)
        return self._json(rq, self.ref_json(repo, ref))

    async def h_matching_refs(self, rq: web.Request) -> web.Response:
        repo, prefix = self._r(rq), "refs/" + rq.match_info["ref"]
        return self._json(rq, [self.ref_json(repo, r) for r in sorted(repo.refs) if r.startswith(prefix)])

    def _commit_sha(self, sha: Any, message: str) -> str:
        if not isinstance(sha, str) or self._objects.get(sha, {}).get("type") != "commit":
            raise ApiError(422, message)
        return sha

    async def h_create_ref(self, rq: web.Request) -> web.Response:
        repo, b = self._r(rq), self._body(rq)
        ref = b.get("ref")
        if not isinstance(ref, str) or not re.fullmatch(r"refs/[^/\s]+/\S+", ref):
            raise ApiError(422, "Reference name is invalid" if ref else "Invalid request.\n\n\"ref\" wasn't supplied.")
        sha = self._commit_sha(b.get("sha"), "Object does not exist")
        if ref in repo.refs:
            raise ApiError(422, "Reference already exists")
        repo.refs[ref] = sha
        self._write("ref", repo, None, {"ref": ref, "sha": sha})
        return self._json(rq, self.ref_json(repo, ref), 201)

    async def h_update_ref(self, rq: web.Request) -> web.Response:
        repo, b, ref = self._r(rq), self._body(rq), "refs/" + rq.match_info["ref"]
        if ref not in repo.refs:
            raise ApiError(422, "Reference does not exist")
        sha = self._commit_sha(b.get("sha"), "Object does not exist")
        if not b.get("force") and repo.refs[ref] not in self.ancestors(sha):
            raise ApiError(422, "Update is not a fast forward")
        repo.refs[ref] = sha
        self._write("ref_update", repo, None, {"ref": ref, "sha": sha, "force": bool(b.get("force"))})
        return self._json(rq, self.ref_json(repo, ref))

    async def h_delete_ref(self, rq: web.Request) -> web.Response:
        repo, ref = self._r(rq), "refs/" + rq.match_info["ref"]
        if repo.refs.pop(ref, None) is None:
            raise ApiError(422, "Reference does not exist")
        self._write("ref_deleted", repo, None, {"ref": ref})
        return self._json(rq, None, 204)

    async def h_create_blob(self, rq: web.Request) -> web.Response:
        repo, b = self._r(rq), self._body(rq)
        if not isinstance(b.get("content"), str):
            raise invalid("Blob", "content")
        enc = b.get("encoding", "utf-8")
        if enc not in ("utf-8", "utf8", "base64"):
            raise invalid("Blob", "encoding", "invalid")
        try:
            data = base64.b64decode(b["content"]) if enc == "base64" else b["content"].encode()
        except ValueError:
            raise invalid("Blob", "content", "invalid") from None
        sha = self.put_blob(data)
        self._write("blob", repo, None, b | {"sha": sha})
        return self._json(rq, {"url": f"{repo.api}/git/blobs/{sha}", "sha": sha}, 201)

    async def h_blob(self, rq: web.Request) -> web.Response:
        repo, sha = self._r(rq), rq.match_info["file_sha"]
        data = self.obj(sha, "blob")["content"]
        return self._json(rq, {"sha": sha, "node_id": node_id("B", sha), "size": len(data), "encoding": "base64",
                               "url": f"{repo.api}/git/blobs/{sha}", "content": b64_lines(data)})

    async def h_create_tree(self, rq: web.Request) -> web.Response:
        """base_tree + entries (path, mode, type, sha|content; sha null deletes), like the Git Trees API."""
        repo, b = self._r(rq), self._body(rq)
        if not isinstance(b.get("tree"), list):
            raise invalid("Tree", "tree")
        base = b.get("base_tree")
        if base and self._objects.get(base, {}).get("type") != "tree":
            raise ApiError(422, "Invalid tree info" if base else "")
        flat = self.flatten(base) if base else {}
        for e in b["tree"]:
            path, typ, mode = str(e.get("path", "")).strip("/"), e.get("type", "blob"), e.get("mode", "100644")
            sha = self.put_blob(str(e["content"]).encode()) if e.get("content") is not None else e.get("sha")
            under = [k for k in flat if k == path or k.startswith(path + "/")]
            if sha is None or typ == "tree":
                for k in under:
                    del flat[k]
            if sha is None:
                continue
            if typ == "tree":
                flat.update(self.flatten(sha, path + "/"))
            elif typ == "blob" and self._objects.get(sha, {}).get("type") != "blob":
                raise ApiError(422, f"tree.sha {sha} is not a valid blob")
            else:
                flat[path] = (mode, typ, sha)
        sha = self.build_tree(flat)
        self._write("tree", repo, None, {"sha": sha, "base_tree": base, "paths": [e.get("path") for e in b["tree"]]})
        return self._json(rq, self._tree_json(repo, sha, False), 201)

    def _tree_json(self, repo: Repo, sha: str, recursive: bool) -> dict:
        def walk(tsha: str, prefix: str) -> list[dict]:
            out = []
            for e in self.obj(tsha, "tree")["entries"]:
                o = self._objects.get(e["sha"], {})
                kind = "trees" if e["type"] == "tree" else "blobs"
                out.append({"path": prefix + e["path"], "mode": e["mode"], "type": e["type"], "sha": e["sha"],
                            **({"size": len(o["content"])} if o.get("type") == "blob" else {}),
                            "url": f"{repo.api}/git/{kind}/{e['sha']}"})
                if recursive and e["type"] == "tree":
                    out += walk(e["sha"], f"{prefix}{e['path']}/")
            return out
        return {"sha": sha, "url": f"{repo.api}/git/trees/{sha}", "tree": walk(sha, ""), "truncated": False}

    async def h_tree(self, rq: web.Request) -> web.Response:
        repo, sha = self._r(rq), rq.match_info["tree_sha"]
        o = self._objects.get(sha)
        if o is None or o["type"] != "tree":
            commit = sha if o and o["type"] == "commit" else self.resolve(repo, sha)
            if commit is None:
                raise ApiError(404)
            sha = self.commit_tree(commit)
        return self._json(rq, self._tree_json(repo, sha, rq.query.get("recursive") not in (None, "", "0", "false")))

    async def h_create_commit(self, rq: web.Request) -> web.Response:
        repo, b = self._r(rq), self._body(rq)
        if not isinstance(b.get("message"), str):
            raise invalid("Commit", "message")
        if self._objects.get(b.get("tree"), {}).get("type") != "tree":
            raise ApiError(422, "Tree SHA does not exist")
        parents = [self._commit_sha(p, "Parent SHA does not exist or is not a commit object")
                   for p in b.get("parents") or []]
        sha = self.put_commit(b["tree"], parents, b["message"], b.get("author"), b.get("committer"))
        self._write("commit", repo, None, {"sha": sha, "message": b["message"], "tree": b["tree"], "parents": parents})
        return self._json(rq, self.git_commit_json(repo, sha), 201)

    async def h_git_commit(self, rq: web.Request) -> web.Response:
        return self._json(rq, self.git_commit_json(self._r(rq), rq.match_info["commit_sha"]))

    # ---- contents & commits ------------------------------------------------------
    def _lookup(self, tree: str, path: str) -> dict | None:
        """The tree entry at ``path`` ("" is the root tree itself)."""
        entry: dict | None = {"type": "tree", "sha": tree, "mode": "040000", "path": ""}
        for part in [p for p in path.split("/") if p]:
            if entry is None or entry["type"] != "tree":
                return None
            entry = next((e for e in self.obj(entry["sha"], "tree")["entries"] if e["path"] == part), None)
        return entry

    def _content_json(self, repo: Repo, path: str, e: dict, ref: str, full: bool) -> dict:
        kind = {"tree": "dir", "commit": "submodule"}.get(e["type"], "symlink" if e["mode"] == "120000" else "file")
        data = self._objects.get(e["sha"], {}).get("content", b"")
        d = {"type": kind, "size": len(data), "name": path.rsplit("/", 1)[-1], "path": path, "sha": e["sha"],
             "url": f"{repo.api}/contents/{path}?ref={ref}",
             "git_url": f"{repo.api}/git/{'trees' if kind == 'dir' else 'blobs'}/{e['sha']}",
             "html_url": f"{WEB}/{repo.full_name}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{path}",
             "download_url": None if kind == "dir" else f"https://raw.githubusercontent.com/{repo.full_name}/{ref}/{path}"}
        return d | {"encoding": "base64", "content": b64_lines(data)} if full else d

    async def h_contents(self, rq: web.Request) -> web.Response:
        repo, path = self._r(rq), rq.match_info.get("path", "").strip("/")
        ref = rq.query.get("ref") or repo.data["default_branch"]
        if (sha := self.resolve(repo, ref)) is None:
            raise ApiError(404, f"No commit found for the ref {ref}")
        if (e := self._lookup(self.commit_tree(sha), path)) is None:
            raise ApiError(404)
        if e["type"] == "tree":
            return self._json(rq, [self._content_json(repo, f"{path}/{c['path']}".lstrip("/"), c, ref, False)
                                   for c in self.obj(e["sha"], "tree")["entries"]])
        if "raw" in rq.headers.get("Accept", ""):
            return web.Response(body=self.obj(e["sha"], "blob")["content"], content_type="text/plain")
        return self._json(rq, self._content_json(repo, path, e, ref, True))

    async def h_put_contents(self, rq: web.Request) -> web.Response:
        """Create/update one file with a commit; ``sha`` of the current blob is required to update."""
        repo, b, path = self._r(rq), self._body(rq), rq.match_info["path"].strip("/")
        for f in ("message", "content"):
            if not isinstance(b.get(f), str):
                raise ApiError(422, f"Invalid request.\n\n\"{f}\" wasn't supplied.")
        branch = b.get("branch") or repo.data["default_branch"]
        if f"refs/heads/{branch}" not in repo.refs:
            raise ApiError(404, f"Branch {branch} not found")
        head = repo.refs[f"refs/heads/{branch}"]
        old = self._lookup(self.commit_tree(head), path)
        if old is not None and not b.get("sha"):
            raise ApiError(422, "Invalid request.\n\n\"sha\" wasn't supplied.")
        if old is not None and b["sha"] != old["sha"]:
            raise ApiError(409, f"{path} does not match {b['sha']}")
        flat = self.flatten(self.commit_tree(head))
        flat[path] = ("100644", "blob", self.put_blob(base64.b64decode(b["content"])))
        sha = self.put_commit(self.build_tree(flat), [head], b["message"], b.get("author"), b.get("committer"))
        repo.refs[f"refs/heads/{branch}"] = sha
        self._write("contents", repo, None, {k: v for k, v in b.items() if k != "content"}
                    | {"path": path, "branch": branch, "commit": sha})
        content = self._content_json(repo, path, self._lookup(self.commit_tree(sha), path), branch, False)
        return self._json(rq, {"content": content, "commit": self.git_commit_json(repo, sha)}, 200 if old else 201)

    async def h_commits(self, rq: web.Request) -> web.Response:
        repo, q = self._r(rq), rq.query
        ref = q.get("sha") or repo.data["default_branch"]
        if (head := self.resolve(repo, ref)) is None:
            raise ApiError(404, f"No commit found for SHA: {ref}")
        shas = self.history(head)
        if path := q.get("path", "").strip("/"):
            def touches(s: str) -> bool:
                parents = self.obj(s, "commit")["parents"]
                before = self._lookup(self.commit_tree(parents[0]), path) if parents else None
                return before != self._lookup(self.commit_tree(s), path)
            shas = [s for s in shas if touches(s)]
        return self._page(rq, shas, lambda s: self.commit_json(repo, s))

    async def h_commit(self, rq: web.Request) -> web.Response:
        repo, ref = self._r(rq), rq.match_info["ref"]
        if (sha := self.resolve(repo, ref)) is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return self._json(rq, self.commit_json(repo, sha, with_files=True))

    async def h_compare(self, rq: web.Request) -> web.Response:
        repo = self._r(rq)
        base_ref, sep, head_ref = rq.match_info["basehead"].partition("...")
        base, head = self.resolve(repo, base_ref), self.resolve(repo, head_ref.rpartition(":")[2])
        if not sep or base is None or head is None:
            raise ApiError(404)
        mb = self.merge_base(base, head)
        ahead = [s for s in reversed(self.history(head)) if s not in self.ancestors(base)]
        behind = len(self.ancestors(base) - self.ancestors(head))
        status = "identical" if base == head else "ahead" if not behind else "behind" if not ahead else "diverged"
        return self._json(rq, {"url": f"{repo.api}/compare/{rq.match_info['basehead']}",
                               "html_url": f"{WEB}/{repo.full_name}/compare/{rq.match_info['basehead']}",
                               "base_commit": self.commit_json(repo, base), "merge_base_commit": self.commit_json(repo, mb),
                               "status": status, "ahead_by": len(ahead), "behind_by": behind,
                               "total_commits": len(ahead), "commits": [self.commit_json(repo, s) for s in ahead],
                               "files": self.diff_files(repo, mb, head)})

    # ---- search ------------------------------------------------------------------
    def _search_repos(self, rq: web.Request, quals: list[tuple[str, str, bool]]) -> list[Repo]:
        visible = self._visible(rq)
        named = [v.lower() for k, v, _ in quals if k == "repo"]
        owners = [v.lower() for k, v, _ in quals if k in ("org", "user", "owner")]
        by_name = {r.full_name.lower(): r for r in visible}
        if any(n not in by_name for n in named):
            raise ApiError(422, "Validation Failed", [{
                "message": "The listed users and repositories cannot be searched either because the resources do "
                           "not exist or you do not have permission to view them.",
                "resource": "Search", "field": "q", "code": "invalid"}])
        return [r for r in visible if (not named or r.full_name.lower() in named)
                and (not owners or r.owner.lower() in owners)]

    async def h_search_issues(self, rq: web.Request) -> web.Response:
        """repo:, is:issue|pr|open|closed, state:, label:, author:, in:, no:label, quoted phrases, words."""
        if not (q := rq.query.get("q", "").strip()):
            raise invalid("Search", "q", "missing")
        quals, terms = self.parse_query(q)
        hits = [(r, i) for r in self._search_repos(rq, quals) for i in r.issues.values()
                if self.match_issue(r, i, quals, terms)]
        key = rq.query.get("sort", "created")
        key = {"comments": "created", "best-match": "created"}.get(key, key)
        hits.sort(key=lambda h: (h[1].get(f"{key}_at", ""), h[1]["number"]), reverse=rq.query.get("order") != "asc")
        return self._page(rq, hits, lambda h: self.issue_json(*h) | {"score": 1.0}, "items",
                          {"incomplete_results": False})

    async def h_search_code(self, rq: web.Request) -> web.Response:
        """repo:/org:, path:, filename:, extension: and words (all must appear) in default-branch files."""
        if not (q := rq.query.get("q", "").strip()):
            raise invalid("Search", "q", "missing")
        quals, terms = self.parse_query(q)
        qual = lambda name: [v.lower() for k, v, _ in quals if k == name]
        hits = []
        for repo in self._search_repos(rq, quals):
            head = self.branch_sha(repo, None)
            for path, (_, typ, sha) in sorted(self.flatten(self.commit_tree(head)).items()):
                text, name = self.blob_text(sha).lower() if typ == "blob" else "", path.rsplit("/", 1)[-1]
                if (all(t in text for t in terms) and all(p.strip("/") in path.lower() for p in qual("path"))
                        and all(f == name.lower() for f in qual("filename"))
                        and all(name.lower().endswith("." + x) for x in qual("extension"))):
                    hits.append((repo, path, sha, head))
        return self._page(rq, hits, lambda h: {
            "name": h[1].rsplit("/", 1)[-1], "path": h[1], "sha": h[2], "score": 1.0,
            "url": f"{h[0].api}/contents/{h[1]}?ref={h[3]}", "git_url": f"{h[0].api}/git/blobs/{h[2]}",
            "html_url": f"{WEB}/{h[0].full_name}/blob/{h[3]}/{h[1]}", "repository": self.repo_json(h[0], brief=True)},
            "items", {"incomplete_results": False})
