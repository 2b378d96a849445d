"""``python -m bot setup``: register the GitHub App from ``app.yml`` and write its credentials to ``.env``.

GitHub's App-manifest flow: a local page POSTs the manifest to GitHub, the person names and creates the
App there, GitHub sends the browser back here with a one-time code, and the code is exchanged
(unauthenticated) for the App's id, webhook secret and private key. Those go to ``.env`` (mode 0600)
and nowhere else: not to the terminal, not to a log, not to a page.

The ``.env`` format read and written here is the common subset of systemd's ``EnvironmentFile=``,
docker compose's ``env_file`` and a shell's ``set -a; . ./.env``: ``KEY=value`` lines, ``#`` comments,
double quotes for values with spaces. The private key is one line with ``\\n`` escapes, which
``bot/settings.py`` turns back into a PEM.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import html
import json
import logging
import os
import re
import secrets
import time
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import aiohttp
import gidgethub
import yaml
from aiohttp import web
from gidgethub.aiohttp import GitHubAPI

from bot import settings as settings_mod
from bot.cli.common import fail, start_logging
from bot.logs import printable
from bot.settings import SettingsError

log = logging.getLogger(__name__)

MANIFEST_KEYS = ("name", "url", "hook_attributes", "redirect_url", "public", "default_events",
                 "default_permissions", "description")
ENV_KEYS = ("GITHUB_APP_ID", "GITHUB_WEBHOOK_SECRET", "GITHUB_PRIVATE_KEY")
PLACEHOLDER_HOSTS = frozenset({"example.com", "example.org", "example.net"})
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPED_IN_QUOTES = '"\\$`'  # what a backslash escapes inside double quotes (systemd and POSIX shells agree)


class SetupError(Exception):
    """The set-up cannot go on; the message says what to do and never holds a secret."""


# ---- .env -----------------------------------------------------------------------------------------

def _parse_value(raw: str, where: str) -> str:
    raw = raw.strip()
    if raw[:1] == "'":
        end = raw.find("'", 1)
        if end < 0:
            raise SettingsError(f"{where}: unterminated single quote")
        value, rest = raw[1:end], raw[end + 1:]
    elif raw[:1] == '"':
        out: list[str] = []
        i = 1
        while i < len(raw) and raw[i] != '"':
            if raw[i] == "\\" and i + 1 < len(raw):
                nxt = raw[i + 1]
                out.append(nxt if nxt in _ESCAPED_IN_QUOTES else "\\" + nxt)  # "\n" stays two characters
                i += 2
                continue
            out.append(raw[i])
            i += 1
        if i >= len(raw):
            raise SettingsError(f"{where}: unterminated double quote")
        value, rest = "".join(out), raw[i + 1:]
    else:
        return raw
    if rest.strip() and not rest.strip().startswith("#"):
        raise SettingsError(f"{where}: text after the closing quote")
    return value


def _assignments(text: str, path: Path) -> list[tuple[int, str, str]]:
    """(line index, key, value) of each assignment; a malformed line is named by number, never shown."""
    found = []
    for index, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export "):].lstrip()
        key, eq, raw = stripped.partition("=")
        key = key.strip()
        if not eq or not _KEY.fullmatch(key):
            raise SettingsError(f"{path}:{index + 1}: not a KEY=value line")
        found.append((index, key, _parse_value(raw, f"{path}:{index + 1} ({key})")))
    return found


def load_dotenv(path: Path) -> dict[str, str]:
    """The variables a ``.env`` file sets ({} when there is none); merge it *under* the real environment."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise SettingsError(f"{path} cannot be read ({exc.strerror})") from None
    return {key: value for _, key, value in _assignments(text, path)}


def _env_line(key: str, value: str) -> str:
    """``KEY="value"``, refusing characters whose meaning differs between .env readers."""
    check = value.replace("\\n", "") if key == "GITHUB_PRIVATE_KEY" else value
    if any(c in check for c in '"\\$`\n\r'):
        raise SetupError(f"GitHub returned a {key} with characters a .env file cannot hold safely")
    return f'{key}="{value}"' if value and not value.isdigit() else f"{key}={value}"


def check_env(path: Path, *, force: bool) -> None:
    """Fail before anything is registered if the credentials could not be saved."""
    if not path.parent.is_dir():
        raise SetupError(f"{path.parent} is not a folder")
    taken = sorted(set(ENV_KEYS) & set(load_dotenv(path)))
    if taken and not force:
        raise SetupError(f"{path} already sets {', '.join(taken)}; pass --force to replace them")


def write_env(path: Path, values: Mapping[str, str], *, force: bool) -> None:
    """Set ``values`` in the file, keeping its other lines; atomic, and the file ends up mode 0600."""
    check_env(path, force=force)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    new = {key: _env_line(key, value) for key, value in values.items()}
    for index, key, _ in reversed(_assignments("\n".join(lines), path)):
        if key in new:
            del lines[index]
    lines += new.values()
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask can only remove bits; this makes it exactly 0600
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---- the manifest ------------------------------------------------------------------------------

def default_manifest() -> Path:
    """``app.yml`` in the working folder, else the one beside the package (a clone or editable install)."""
    here = Path("app.yml")
    return here if here.exists() else Path(__file__).resolve().parents[2] / "app.yml"


def github_web_url(api_url: str) -> str:
    """github.com for api.github.com; ``https://HOST`` for GitHub Enterprise Server's ``https://HOST/api/v3``."""
    parsed = urlparse(api_url.rstrip("/"))
    if parsed.netloc == "api.github.com":
        return "https://github.com"
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path.removesuffix('/api/v3')}"


def build_manifest(app_yml: Mapping[str, Any], *, redirect_url: str, webhook_url: str | None = None,
                   name: str | None = None) -> dict[str, Any]:
    """The JSON manifest GitHub takes, from ``app.yml``.

    A webhook URL still on a placeholder host is registered inactive, so GitHub does not send a
    repository's events to someone else's server before the real URL is set.
    """
    manifest = {k: app_yml[k] for k in MANIFEST_KEYS if k in app_yml}
    hook = dict(manifest.get("hook_attributes") or {})
    if webhook_url:
        hook.update(url=webhook_url, active=True)
    if urlparse(str(hook.get("url", ""))).hostname in PLACEHOLDER_HOSTS | {None}:
        hook.update(url=hook.get("url") or "https://example.com/webhook", active=False)
    manifest["hook_attributes"] = hook
    manifest["redirect_url"] = redirect_url
    if name:
        manifest["name"] = name
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SetupError(f"cannot read {path} ({exc.strerror}); pass --manifest") from None
    except yaml.YAMLError as exc:
        raise SetupError(f"{path} is not YAML: {exc}") from None
    if not isinstance(data, dict) or not data.get("name") or not data.get("url"):
        raise SetupError(f"{path} is not a GitHub App manifest (it needs at least name and url)")
    return data


# ---- one flow at a time, and the App it must bring back ------------------------------------------

STATE_TTL = 30 * 60.0  # seconds a started flow waits for GitHub's redirect (GitHub's code itself lasts an hour)
COOKIE = "triage_lead_setup"


@dataclass(frozen=True)
class Attempt:
    """One trip to GitHub: the ``state`` GitHub sends back, and the secret only the starting browser's cookie
    holds, so a process that reads the state still cannot complete the redirect."""

    state: str
    secret: str
    expires: float


class Claim(Enum):
    """What GitHub's redirect back amounts to."""

    TAKEN = "taken"              # the open flow's state and cookie: the flow is used up now
    UNKNOWN = "unknown"          # no such open flow: never started, used already, expired, or another state
    WRONG_BROWSER = "wrong"      # the open flow's state without its cookie


class OpenFlow:
    """At most one manifest flow is open; its state is single-use, expires, and is only good with its cookie.

    A second start from a browser without the open flow's cookie is refused, not allowed to replace it: the
    person's own reload still works (the browser sends the cookie), and a page opened by anything else is
    a visible alarm instead of a silent takeover of the person's flow.
    """

    def __init__(self, clock: Callable[[], float], ttl: float) -> None:
        self._clock, self._ttl = clock, ttl
        self._open: Attempt | None = None

    def _current(self) -> Attempt | None:
        if self._open is not None and self._clock() >= self._open.expires:
            self._open = None
        return self._open

    def start(self, cookie: str) -> Attempt | None:
        """The flow this browser may go on with (its own open one, or a new one); None while another is open."""
        if (current := self._current()) is not None:
            return current if hmac.compare_digest(cookie.encode(), current.secret.encode()) else None
        self._open = Attempt(secrets.token_urlsafe(24), secrets.token_urlsafe(32), self._clock() + self._ttl)
        return self._open

    def seconds_left(self) -> int:
        current = self._current()
        return max(1, int(current.expires - self._clock())) if current else 0

    def claim(self, state: str, cookie: str) -> Claim:
        """Check GitHub's redirect (both in constant time); the open flow is used up only when both match."""
        if (current := self._current()) is None:
            return Claim.UNKNOWN
        state_ok = hmac.compare_digest(state.encode(), current.state.encode())
        cookie_ok = hmac.compare_digest(cookie.encode(), current.secret.encode())
        if not state_ok:
            return Claim.UNKNOWN
        if not cookie_ok:
            return Claim.WRONG_BROWSER
        self._open = None
        return Claim.TAKEN


def _shown(value: object) -> str:
    """A name GitHub or a stranger chose, quoted and clipped for a log line or a page."""
    return repr(printable(str(value))[:100])


def missing_credentials(app: Mapping[str, Any]) -> list[str]:
    """What the conversion's answer lacks of what ``.env`` needs: the App id, its key, its webhook secret."""
    want = {"id": int, "pem": str, "webhook_secret": str}
    return [k for k, kind in want.items()
            if not app.get(k) or isinstance(app.get(k), bool) or not isinstance(app.get(k), kind)]


def wrong_app(app: Mapping[str, Any], *, name: str, org: str | None) -> str | None:
    """Why the App GitHub returned is not the one this flow asked for, naming both; None when it is.

    Without ``--org`` GitHub creates the App under the signed-in person's account, whose login the flow
    cannot know (it holds no token): there the name ties the App to this flow, and an App owned by an
    organization is refused.
    """
    raw_owner = app.get("owner")
    owner: dict[str, Any] = raw_owner if isinstance(raw_owner, dict) else {}
    login, kind = str(owner.get("login") or ""), owner.get("type")
    name_ok = app.get("name") == name
    owner_ok = login.casefold() == org.casefold() if org else kind == "User"  # logins ignore case on GitHub
    if name_ok and owner_ok:
        return None
    wanted = f"the organization {_shown(org)}" if org else "your personal account"
    return (f"GitHub returned the App {_shown(app.get('name'))} owned by {_shown(login)} ({_shown(kind)}), but "
            f"this set-up asked for {_shown(name)} owned by {wanted}")


# ---- the local pages --------------------------------------------------------------------------

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


def next_steps(app: Mapping[str, Any], flow: Flow) -> list[str]:
    """What to print once the credentials are saved (no secret among them)."""
    html_url = str(app.get("html_url") or "")
    raw_owner = app.get("owner")
    owner: dict[str, Any] = raw_owner if isinstance(raw_owner, dict) else {}
    org_path = f"/organizations/{owner.get('login')}" if owner.get("type") == "Organization" else ""
    settings_url = f"{flow.github_url.rstrip('/')}{org_path}/settings/apps/{app.get('slug')}"
    steps = [f"Install it on a repository: {html_url}/installations/new"]
    if not flow.manifest["hook_attributes"].get("active"):
        steps.append(f"Set its webhook URL to https://<your host>/webhook and tick Active: {settings_url}")
    default_env = flow.env_path.resolve() == Path(".env").resolve()
    steps.append("Run the bot: python -m bot " + ("" if default_env else f"--env-file {flow.env_path} ") + "serve")
    return [f"Registered the GitHub App {app.get('name')!r} (id {app.get('id')}) owned by "
            f"{owner.get('login')!r}: {html_url}",
            f"Wrote {', '.join(app['keys'])} to {flow.env_path} (mode 0600).", "Next:",
            *(f"  {n}. {step}" for n, step in enumerate(steps, 1))]


async def run_setup(*, github_url: str = "https://github.com", api_url: str, port: int, env_path: Path,
                    manifest_path: Path, open_browser: bool, org: str | None = None, force: bool = False,
                    webhook_url: str | None = None, name: str | None = None, host: str = "127.0.0.1",
                    out: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic,
                    state_ttl: float = STATE_TTL) -> Path:
    """Serve the set-up page on ``host:port`` until GitHub's redirect brings the code of the App this flow
    asked for; returns the .env path."""
    if webhook_url and urlparse(webhook_url).scheme not in ("https", "http"):
        raise SetupError("--webhook-url must start with https://")
    app_yml = read_manifest(manifest_path)
    check_env(env_path, force=force)
    flow = Flow(app_yml=app_yml, github_url=github_url, api_url=api_url, env_path=env_path, org=org, force=force,
                webhook_url=webhook_url, name=name, clock=clock, state_ttl=state_ttl)
    runner = web.AppRunner(make_setup_app(flow), access_log=None)  # the redirect's URL carries the code
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        flow.base_url = f"http://{host}:{runner.addresses[0][1]}"
        out(f"Open {flow.link} in a browser to register the GitHub App on {github_url} "
            f"(waiting for GitHub to send you back; Ctrl-C stops).")
        if open_browser:
            await asyncio.get_running_loop().run_in_executor(None, webbrowser.open, flow.link)
        app = await flow.result
    finally:
        await runner.cleanup()
    for line in next_steps(app, flow):
        out(line)
    return env_path


def cmd_setup(args: argparse.Namespace) -> int:
    """Register the GitHub App from app.yml through GitHub's manifest flow and write its keys to --env-file."""
    try:
        settings = settings_mod.load(require_app=False)  # the environment only: the .env file is what this writes
    except SettingsError as exc:
        return fail(str(exc))
    start_logging(args.log_level or "WARNING")
    api_url = args.api_url or settings.github_api_url
    try:
        asyncio.run(run_setup(github_url=args.github_url or github_web_url(api_url), api_url=api_url, port=args.port,
                              env_path=Path(args.env_file), manifest_path=Path(args.manifest or default_manifest()),
                              open_browser=not args.no_browser, org=args.org, force=args.force,
                              webhook_url=args.webhook_url, name=args.name))
    except SetupError as exc:
        return fail(str(exc))
    except OSError as exc:
        return fail(f"cannot serve the set-up page on port {args.port}: {exc.strerror}")
    except KeyboardInterrupt:
        return fail("set-up stopped before GitHub sent the App back; nothing was written")
    return 0
