"""The local set-up site of ``python -m bot setup``: ``/`` sends the manifest to GitHub, ``/setup/done`` takes
GitHub's one-time code back, exchanges it for the App's credentials and saves them to ``.env``.

Nothing secret is shown: the credentials go to the file only, never to a page or a log line.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import aiohttp
import gidgethub
from aiohttp import web
from gidgethub.aiohttp import GitHubAPI

from bot.cli.envfile import SetupError, write_env
from bot.cli.manifest import STATE_TTL, Claim, OpenFlow, build_manifest, missing_credentials, wrong_app
from bot.settings import SettingsError

log = logging.getLogger("bot.cli.setup")  # the verb's one logger, whichever of its modules speaks

COOKIE = "triage_lead_setup"


@dataclass
class Flow:
    """One set-up session: what to send GitHub, where to save the answer, and the open trip to GitHub."""

    app_yml: Mapping[str, Any]
    github_url: str
    api_url: str
    env_path: Path
    base_url: str = "http://127.0.0.1:3000"
    org: str | None = None
    force: bool = False
    webhook_url: str | None = None
    name: str | None = None
    clock: Callable[[], float] = time.monotonic
    state_ttl: float = STATE_TTL
    result: asyncio.Future[dict[str, Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    trips: OpenFlow = field(init=False)
    # In the link printed on the terminal (Jupyter's way): a program that finds the port cannot open the page,
    # so it cannot be the first to start a registration under the manifest's name.
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    def __post_init__(self) -> None:
        self.trips = OpenFlow(self.clock, self.state_ttl)

    def manifest_for(self, base_url: str) -> dict[str, Any]:
        """The manifest, sending GitHub's redirect back to ``base_url`` (the name the browser used, so its
        cookie comes along)."""
        return build_manifest(self.app_yml, redirect_url=f"{base_url}/setup/done",
                              webhook_url=self.webhook_url, name=self.name)

    @property
    def manifest(self) -> dict[str, Any]:
        return self.manifest_for(self.base_url)

    @property
    def link(self) -> str:
        return f"{self.base_url}/?token={self.token}"

    def new_app_url(self, state: str) -> str:
        where = f"/organizations/{quote(self.org, safe='')}" if self.org else ""
        return f"{self.github_url.rstrip('/')}{where}/settings/apps/new?state={state}"


FLOW = web.AppKey("flow", Flow)
SESSION = web.AppKey("session", aiohttp.ClientSession)
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}  # the code must not leak as a Referer


def _page(status: int, title: str, body: str) -> web.Response:
    text = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;max-width:40em;margin:3em auto'><h1>{html.escape(title)}</h1>"
            f"{body}</body></html>")
    return web.Response(status=status, text=text, content_type="text/html", headers=_HEADERS)


def _again(request: web.Request) -> str:
    token = quote(request.app[FLOW].token, safe="")
    return f"<p><a href='http://{html.escape(request.host)}/?token={token}'>Start again</a>.</p>"


async def start_page(request: web.Request) -> web.Response:
    """An auto-submitting form that POSTs the manifest to GitHub's new-App page, for the browser that holds
    the open flow's cookie (which this page sets when it opens a flow)."""
    flow = request.app[FLOW]
    if flow.result.done():
        return _page(200, "Already done", "<p>The App's credentials are saved. You can close this tab.</p>")
    if not hmac.compare_digest(request.query.get("token", "").encode(), flow.token.encode()):
        log.warning("setup: the set-up page was opened without the link printed on the terminal; refused")
        return _page(403, "Open the link the terminal printed", (
            "<p>This page starts a registration only from the link <code>python -m bot setup</code> printed "
            "(it carries a one-time token).</p>"))
    trip = flow.trips.start(request.cookies.get(COOKIE, ""))
    if trip is None:
        log.warning("setup: the set-up page was opened by a browser or program without the open flow's cookie; "
                    "refused. If that was not you, stop the set-up: something on this machine may be trying to "
                    "register its own App in your name")
        return _page(409, "This set-up is already open in another browser", (
            "<p>A set-up started from this page is already on its way to GitHub, from another browser or "
            "another program on this computer, so this one cannot start. If you did not open it, stop "
            "<code>python -m bot setup</code> (Ctrl-C) and run it again.</p>"))
    manifest = html.escape(json.dumps(flow.manifest_for(f"http://{request.host}")), quote=True)
    resp = _page(200, "Register triage-lead on GitHub", (
        f"<form id='manifest' method='post' action='{html.escape(flow.new_app_url(trip.state), quote=True)}'>"
        f"<input type='hidden' name='manifest' value=\"{manifest}\">"
        "<p>Sending you to GitHub to create the App…</p><button type='submit'>Create the GitHub App</button></form>"
        "<script>document.getElementById('manifest').submit()</script>"))
    # Lax: sent on GitHub's top-level redirect back here, never on a cross-site request a page makes.
    resp.set_cookie(COOKIE, trip.secret, max_age=flow.trips.seconds_left(), path="/", httponly=True, samesite="Lax")
    return resp


async def _convert(session: aiohttp.ClientSession, api_url: str, code: str) -> dict[str, Any]:
    gh = GitHubAPI(session, "triage-lead-setup", base_url=api_url)
    data = await gh.post("/app-manifests/{code}/conversions", url_vars={"code": code}, data=b"")
    if not isinstance(data, dict):
        raise SetupError("GitHub's answer to the code exchange is not an App")
    return data


def _claim_refused(request: web.Request, claim: Claim) -> web.Response:
    if claim is Claim.WRONG_BROWSER:
        log.warning("setup: GitHub's redirect came back without the cookie of the browser that started the flow; "
                    "refused, nothing written")
        return _page(403, "This is not the browser that started the set-up", (
            "<p>The redirect carries the right <code>state</code> but not the cookie this page set in the browser "
            "that started the set-up (another browser, another program, or cookies blocked for this address), "
            "so nothing was saved. Finish in the browser that opened the page.</p>"))
    return _page(400, "This is not the set-up you started", (
        "<p>The <code>state</code> does not match an open set-up: it was used already, it expired "
        f"({int(request.app[FLOW].state_ttl // 60)} minutes after the page opened), or it belongs to another "
        "session. Nothing was saved.</p>" + _again(request)))


async def done_page(request: web.Request) -> web.Response:
    """GitHub's redirect back: claim the open flow, exchange the code, check the App, save the credentials."""
    flow = request.app[FLOW]
    state, code = request.query.get("state", ""), request.query.get("code", "")
    if not code:
        return _page(400, "No code from GitHub", "<p>GitHub did not send a code back.</p>" + _again(request))
    async with flow.lock:
        if flow.result.done():
            return _page(200, "Already done", "<p>The App's credentials are saved. You can close this tab.</p>")
        if (claim := flow.trips.claim(state, request.cookies.get(COOKIE, ""))) is not Claim.TAKEN:
            return _claim_refused(request, claim)
        try:
            app = await _convert(request.app[SESSION], flow.api_url, code)
        except gidgethub.BadRequest as exc:
            return _page(400, "GitHub did not accept the code", (
                f"<p>GitHub answered {html.escape(str(exc.status_code))} ({html.escape(str(exc))}). A code works "
                "once and expires after an hour.</p>" + _again(request)))
        except (TimeoutError, gidgethub.GitHubException, aiohttp.ClientError, SetupError) as exc:
            return _page(502, "Could not exchange the code",
                         f"<p>{html.escape(str(exc) or type(exc).__name__)}</p>" + _again(request))
        if missing := missing_credentials(app):
            log.warning("setup: GitHub's answer to the code exchange has no %s; nothing written", ", ".join(missing))
            return _page(502, "GitHub's answer cannot be saved", (
                f"<p>GitHub's answer to the code exchange has no {html.escape(', '.join(missing))}, so nothing was "
                "saved.</p>" + _again(request)))
        if why := wrong_app(app, name=flow.manifest["name"], org=flow.org):
            log.warning("setup: %s; nothing written to %s", why, flow.env_path)
            return _page(409, "This is not the App this set-up asked for", (
                f"<p>{html.escape(why)}. Nothing was saved to <code>{html.escape(str(flow.env_path))}</code>.</p>"
                "<p>If you changed the App's name or account on GitHub's page, that App was created but its keys "
                "were not saved: delete it in its settings on GitHub (or generate a private key there by hand), "
                "and run the set-up again with <code>--name</code> and <code>--org</code> matching it. Otherwise "
                "another program on this computer may have tried to slip in its own App.</p>" + _again(request)))
        return _save(flow, app)


def _save(flow: Flow, app: Mapping[str, Any]) -> web.Response:
    """Write the checked App's credentials to the .env file and finish the set-up."""
    values = {"GITHUB_APP_ID": str(app["id"]), "GITHUB_WEBHOOK_SECRET": app["webhook_secret"],
              "GITHUB_PRIVATE_KEY": app["pem"].strip().replace("\r\n", "\n").replace("\n", "\\n")}
    try:
        write_env(flow.env_path, values, force=flow.force)
    except (OSError, SetupError, SettingsError) as exc:
        manage = str(app.get("html_url") or "")
        flow.result.set_exception(SetupError(f"the App was created ({manage}) but {flow.env_path} could not be "
                                             f"written: {exc}; on its settings page generate a new private key "
                                             "and set a webhook secret"))
        return _page(500, "The App was created, but its credentials could not be saved", (
            f"<p>{html.escape(str(exc))}</p><p>Generate a new private key and set a webhook secret on the "
            "App's settings page: "
            f"<a href='{html.escape(manage)}'>{html.escape(manage)}</a>.</p>"))
    flow.result.set_result({k: app.get(k) for k in ("id", "slug", "name", "html_url", "owner")}
                           | {"keys": sorted(values)})
    return _page(200, "Done", "<p>The App is registered and its credentials are saved. You can close this tab; "
                              "the terminal shows the next steps.</p>")


@web.middleware
async def _local_only(request: web.Request, handler: Any) -> web.StreamResponse:
    """Answer only to this machine's own names: a DNS-rebinding page must not read the state nonce."""
    port = urlparse(request.app[FLOW].base_url).port
    if request.host not in {f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"}:
        return web.Response(status=421, text="misdirected request")
    return await handler(request)


def make_setup_app(flow: Flow) -> web.Application:
    """The local set-up site: ``/`` sends the manifest to GitHub, ``/setup/done`` takes the code back."""
    app = web.Application(middlewares=[_local_only])
    app[FLOW] = flow

    async def session(app: web.Application) -> Any:
        app[SESSION] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        yield
        await app[SESSION].close()

    app.cleanup_ctx.append(session)
    app.router.add_get("/", start_page)
    app.router.add_get("/setup/done", done_page)
    return app
