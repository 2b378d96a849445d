"""``python -m bot setup`` against the sandbox GitHub: the manifest page, the code exchange, the .env file."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import pytest
import yaml

from bot import settings as settings_mod
from bot.cli.setup import MANIFEST_KEYS, STATE_TTL, SetupError, build_manifest, github_web_url, load_dotenv, run_setup
from bot.settings import SettingsError
from tests.conftest import ROOT

WEB = "https://github.example"


class Clock:
    """An injectable monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Browser:
    """A browser's view of the set-up pages: it keeps the page's cookie (aiohttp's default jar refuses cookies
    from an IP address; a browser takes them)."""

    def __init__(self, base: str, token: str = "") -> None:
        self.base, self.token = base, token  # a stranger has no token: only the terminal shows it
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.set_cookie = ""

    async def open(self) -> tuple[int, str]:
        async with self.http.get(self.base + "/", params={"token": self.token}) as resp:
            assert resp.headers["Cache-Control"] == "no-store"
            self.set_cookie = resp.headers.get("Set-Cookie", "")
            return resp.status, await resp.text()

    async def start_page(self) -> tuple[str, dict[str, Any]]:
        status, text = await self.open()
        assert status == 200, text
        action = html.unescape(re.search(r"action='([^']+)'", text).group(1))  # type: ignore[union-attr]
        manifest = json.loads(html.unescape(re.search(r'name=\'manifest\' value="([^"]+)"', text).group(1)))  # type: ignore[union-attr]
        assert ".submit()" in text  # the form sends itself
        return action, manifest

    async def state(self) -> str:
        action, _ = await self.start_page()
        return parse_qs(urlparse(action).query)["state"][0]

    async def done(self, **query: str) -> tuple[int, str]:
        async with self.http.get(self.base + "/setup/done", params=query) as resp:
            return resp.status, await resp.text()


class Setup(Browser):
    """A running ``run_setup``, seen from the browser of the person who started it."""

    def __init__(self, task: asyncio.Task[Path], base: str, token: str, lines: list[str]) -> None:
        super().__init__(base, token)
        self.task, self.lines = task, lines


@pytest.fixture
async def start(sandbox: Any, tmp_path: Path) -> Any:
    running: list[Browser] = []

    async def go(**options: Any) -> Setup:
        lines: list[str] = []
        kwargs = dict(github_url=WEB, api_url=sandbox.url, port=0, env_path=tmp_path / ".env",
                      manifest_path=ROOT / "app.yml", open_browser=False, out=lines.append) | options
        task = asyncio.create_task(run_setup(**kwargs))
        for _ in range(500):
            if lines or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()  # raises what run_setup raised
        link = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=([\w-]+)", lines[0])
        assert link is not None, lines[0]
        running.append(Setup(task, link.group(1), link.group(2), lines))
        return running[-1]  # type: ignore[return-value]

    def stranger(s: Setup, knows_link: bool = False) -> Browser:
        """Another program on the machine: it reaches the same port, without the person's cookie, and without
        the link the terminal printed unless ``knows_link`` (another browser of the person's, say)."""
        running.append(Browser(s.base, s.token if knows_link else ""))
        return running[-1]

    go.stranger = stranger  # type: ignore[attr-defined]
    yield go
    for s in running:
        if isinstance(s, Setup):
            s.task.cancel()
            await asyncio.gather(s.task, return_exceptions=True)
        await s.http.close()


def my_app(sandbox: Any, code: str, *, name: str = "triage-lead", login: str = "octocat", kind: str = "User",
           **options: Any) -> dict[str, Any]:
    """A manifest code whose App has this name and owner (the sandbox's codes belong to its organization)."""
    app = sandbox.add_manifest_code(code, **options)
    app["name"], app["owner"] = name, sandbox.user(login, kind)
    return app


def conversions(sandbox: Any) -> list[str]:
    """The codes the set-up spent on GitHub."""
    return [r.path.split("/")[2] for r in sandbox.requests if r.path.startswith("/app-manifests/")]


async def test_start_page_posts_the_manifest_to_github(start: Any) -> None:
    s = await start()
    action, manifest = await s.start_page()
    assert action.startswith(f"{WEB}/settings/apps/new?state=") and len(await s.state()) >= 32
    app_yml = yaml.safe_load((ROOT / "app.yml").read_text())
    assert set(manifest) == set(MANIFEST_KEYS)
    assert manifest["redirect_url"] == f"{s.base}/setup/done"
    for key in ("name", "url", "public", "default_events", "default_permissions", "description"):
        assert manifest[key] == app_yml[key]
    # app.yml's webhook URL is a placeholder: registered inactive until the real one is set.
    assert manifest["hook_attributes"] == {"url": "https://example.com/webhook", "active": False}


async def test_org_and_webhook_url_options(start: Any) -> None:
    s = await start(org="octo-org", webhook_url="https://bot.example.net:8443/webhook", name="triage-lead-dev")
    action, manifest = await s.start_page()
    assert action.startswith(f"{WEB}/organizations/octo-org/settings/apps/new?state=")
    assert manifest["hook_attributes"] == {"url": "https://bot.example.net:8443/webhook", "active": True}
    assert manifest["name"] == "triage-lead-dev"


async def test_github_sends_the_browser_back_to_the_name_it_used(start: Any) -> None:
    s = await start()  # a cookie set for localhost is not sent to 127.0.0.1: the redirect must come back to it
    local = "localhost:" + s.base.rsplit(":", 1)[1]
    async with s.http.get(s.base + "/", params={"token": s.token}, headers={"Host": local}) as resp:
        text = html.unescape(await resp.text())
    assert resp.status == 200 and f'"redirect_url": "http://{local}/setup/done"' in text


async def test_redirect_writes_the_env_file(start: Any, sandbox: Any, tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    my_app(sandbox, "code-ok", name="triage-lead-test", id=777, slug="triage-lead-test",
           webhook_secret="whsec-3f9a1c0b7d")
    s = await start(name="triage-lead-test")
    state = await s.state()
    cookie = s.set_cookie.lower()  # only the browser holds it, scripts cannot read it, GitHub's redirect sends it
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    status, page = await s.done(code="code-ok", state=state)
    assert status == 200 and "credentials are saved" in page
    env_path = await asyncio.wait_for(s.task, 5)
    assert env_path == tmp_path / ".env"
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    env = load_dotenv(env_path)
    assert conversions(sandbox) == ["code-ok"]
    assert env["GITHUB_APP_ID"] == "777" and env["GITHUB_WEBHOOK_SECRET"] == "whsec-3f9a1c0b7d"
    raw = env_path.read_text()
    assert raw.count("\n") == 3 and "\\n" in env["GITHUB_PRIVATE_KEY"]  # the key is one line
    settings = settings_mod.load(env, require_app=True)  # the bot reads it as written
    assert settings.app_id == 777 and settings.webhook_secret == "whsec-3f9a1c0b7d"
    assert settings.private_key and settings.private_key.startswith("-----BEGIN")
    printed = "\n".join(s.lines)
    assert "'triage-lead-test' (id 777) owned by 'octocat'" in printed
    assert "https://github.com/apps/triage-lead-test/installations/new" in printed
    assert f"python -m bot --env-file {env_path} serve" in printed and "webhook URL" in printed
    body = settings.private_key.splitlines()[1]
    for secret in ("whsec-3f9a1c0b7d", body):  # never on stdout, never in a log
        assert secret not in printed and secret not in caplog.text


async def test_bad_state_is_refused_and_nothing_written(start: Any, sandbox: Any, tmp_path: Path) -> None:
    my_app(sandbox, "code-1")
    s = await start()
    status, page = await s.done(code="code-1", state="not-the-state")  # before any flow is open
    assert status == 400 and "state" in page
    state = await s.state()
    status, page = await s.done(code="code-1", state="not-the-state")  # with one open, the person's own cookie
    assert status == 400 and "state" in page
    assert not (tmp_path / ".env").exists()
    assert conversions(sandbox) == []  # the code was not spent
    assert not s.task.done()
    status, _ = await s.done(code="code-1", state=state)  # the real redirect still works
    assert status == 200 and (await asyncio.wait_for(s.task, 5)).exists()


async def test_unknown_code_is_a_clear_error(start: Any, tmp_path: Path) -> None:
    s = await start()
    status, page = await s.done(code="no-such-code", state=await s.state())
    assert status == 400 and "did not accept the code" in page and "404" in page and "expires" in page
    assert not (tmp_path / ".env").exists() and not s.task.done()  # one can start again


async def test_a_used_state_is_not_taken_twice(start: Any, sandbox: Any, tmp_path: Path) -> None:
    my_app(sandbox, "code-late")
    s = await start()
    state = await s.state()
    status, _ = await s.done(code="no-such-code", state=state)  # the flow is used, even though GitHub said no
    assert status == 400 and conversions(sandbox) == ["no-such-code"]
    status, page = await s.done(code="code-late", state=state)  # the same state and cookie again
    assert status == 400 and "used already" in page
    assert conversions(sandbox) == ["no-such-code"] and not (tmp_path / ".env").exists()
    new_state = await s.state()  # starting again opens a new flow, which works
    assert new_state != state
    status, _ = await s.done(code="code-late", state=new_state)
    assert status == 200 and load_dotenv(await asyncio.wait_for(s.task, 5))["GITHUB_APP_ID"]


async def test_an_expired_state_is_refused(start: Any, sandbox: Any, tmp_path: Path) -> None:
    my_app(sandbox, "code-slow")
    clock = Clock()
    s = await start(clock=clock, state_ttl=600)
    state = await s.state()
    clock.now += 599
    assert await s.state() == state  # a reload within the time goes on with the same flow
    clock.now += 1
    status, page = await s.done(code="code-slow", state=state)
    assert status == 400 and "expired" in page and "10 minutes" in page
    assert conversions(sandbox) == [] and not (tmp_path / ".env").exists()
    new_state = await s.state()
    assert new_state != state
    status, _ = await s.done(code="code-slow", state=new_state)
    assert status == 200 and (await asyncio.wait_for(s.task, 5)).exists()


async def test_a_second_start_is_refused_while_one_is_open(start: Any, sandbox: Any, caplog: Any) -> None:
    my_app(sandbox, "code-mine")
    clock = Clock()
    s = await start(clock=clock)
    state = await s.state()
    other = start.stranger(s, knows_link=True)
    status, page = await other.open()  # another browser with the link opens the page: no state, no cookie
    assert status == 409 and "already open in another browser" in page and "Ctrl-C" in page
    assert "state=" not in page and state not in page and not other.set_cookie
    assert "opened by a browser or program without the open flow's cookie" in caplog.text
    assert [r.levelname for r in caplog.records if r.name == "bot.cli.setup"] == ["WARNING"]
    assert await s.state() == state  # the person's own reload goes on with their flow
    clock.now += STATE_TTL
    assert (await other.open())[0] == 200  # once the open flow expires, a new one may start
    status, _ = await s.done(code="code-mine", state=state)
    assert status == 400 and conversions(sandbox) == []


async def test_a_redirect_without_the_browsers_cookie_is_refused(start: Any, sandbox: Any, tmp_path: Path,
                                                                  caplog: Any) -> None:
    my_app(sandbox, "code-theirs", name="triage-lead", id=4242)  # another program's App, named like ours
    my_app(sandbox, "code-mine", id=777)
    s = await start()
    state = await s.state()
    other = start.stranger(s)  # it learned the state somehow; it has no cookie of the person's browser
    status, page = await other.done(code="code-theirs", state=state)
    assert status == 403 and "not the browser that started" in page
    assert conversions(sandbox) == [] and not (tmp_path / ".env").exists() and not s.task.done()
    assert "without the cookie of the browser that started the flow" in caplog.text
    status, _ = await s.done(code="code-mine", state=state)  # the person's own redirect still completes
    assert status == 200 and load_dotenv(await asyncio.wait_for(s.task, 5))["GITHUB_APP_ID"] == "777"


async def test_a_program_that_opens_the_page_first_cannot_slip_in_its_app(start: Any, sandbox: Any,
                                                                           tmp_path: Path, caplog: Any) -> None:
    my_app(sandbox, "code-theirs", name="mallory-bot", login="mallory", id=4242)
    s = await start()
    other = start.stranger(s)  # it polls the port and opens the page before the person's browser does
    status, page = await other.open()  # without the printed link it cannot start a registration at all
    assert status == 403 and "Open the link the terminal printed" in page and "state=" not in page
    assert not other.set_cookie
    assert await s.state()  # the person's own flow starts as if nothing happened
    s2 = await start()  # and one that has the link (it read the terminal) still cannot slip in its App
    other = start.stranger(s2, knows_link=True)
    state = await other.state()
    status, page = await s2.open()  # the person sees the alarm, not a page that silently works
    assert status == 409 and "If you did not open it" in page and state not in page
    status, page = await other.done(code="code-theirs", state=state)
    assert status == 409 and "&#x27;mallory-bot&#x27; owned by &#x27;mallory&#x27;" in page
    assert not (tmp_path / ".env").exists() and not s2.task.done()
    assert [r.levelname for r in caplog.records if r.name == "bot.cli.setup"] == ["WARNING"] * 3


@pytest.mark.parametrize("org,name,login,kind,why", [
    ("octo-org", "someone-elses-app", "octo-org", "Organization", "the name"),
    ("octo-org", "triage-lead", "mallory-org", "Organization", "the organization"),
    (None, "triage-lead", "mallory-org", "Organization", "an organization's App, not the person's"),
])
async def test_a_different_app_writes_nothing(start: Any, sandbox: Any, tmp_path: Path, caplog: Any,
                                              org: str | None, name: str, login: str, kind: str, why: str) -> None:
    my_app(sandbox, "code-other", name=name, login=login, kind=kind, id=4242)
    s = await start(org=org)
    status, page = await s.done(code="code-other", state=await s.state())
    assert status == 409 and "not the App this set-up asked for" in page, why
    wanted = "the organization &#x27;octo-org&#x27;" if org else "your personal account"
    assert f"GitHub returned the App &#x27;{name}&#x27; owned by &#x27;{login}&#x27;" in page
    assert f"this set-up asked for &#x27;triage-lead&#x27; owned by {wanted}" in page
    assert "Nothing was saved" in page and not (tmp_path / ".env").exists() and not s.task.done()
    warning = [r for r in caplog.records if r.name == "bot.cli.setup" and r.levelname == "WARNING"]
    assert len(warning) == 1 and f"'{name}' owned by '{login}'" in warning[0].getMessage()
    assert "nothing written" in warning[0].getMessage()


@pytest.mark.parametrize("missing", ["webhook_secret", "pem", "id"])
async def test_an_answer_without_credentials_writes_nothing(start: Any, sandbox: Any, tmp_path: Path,
                                                            caplog: Any, missing: str) -> None:
    my_app(sandbox, "code-bare")[missing] = "" if missing != "id" else None
    s = await start()
    status, page = await s.done(code="code-bare", state=await s.state())
    assert status == 502 and f"has no {missing}" in page
    assert not (tmp_path / ".env").exists() and not s.task.done()
    assert f"has no {missing}; nothing written" in caplog.text


async def test_existing_keys_are_kept_unless_forced(start: Any, sandbox: Any, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# mine\nDATABASE_URL=sqlite:///data/bot.sqlite3\nGITHUB_APP_ID=1\n")
    with pytest.raises(SetupError, match="GITHUB_APP_ID.*--force"):
        await start()  # refused before anything is registered on GitHub
    my_app(sandbox, "code-2", id=9)
    s = await start(force=True)
    await s.done(code="code-2", state=await s.state())
    await asyncio.wait_for(s.task, 5)
    text = env.read_text()
    assert text.startswith("# mine\nDATABASE_URL=sqlite:///data/bot.sqlite3\n") and text.count("GITHUB_APP_ID=") == 1
    assert load_dotenv(env)["GITHUB_APP_ID"] == "9" and stat.S_IMODE(env.stat().st_mode) == 0o600


async def test_only_local_host_names_are_answered(start: Any) -> None:
    s = await start()  # a DNS-rebinding page reaches the port under its own name: it must not read the nonce
    async with s.http.get(s.base + "/", headers={"Host": "attacker.example:" + s.base.rsplit(":", 1)[1]}) as resp:
        assert resp.status == 421 and "state=" not in await resp.text()


def test_load_dotenv(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    assert load_dotenv(path) == {}
    path.write_text('# comment\n\nexport A=plain value \nB="two words # not a comment"  # a comment\n'
                    "C='lit\\n$X'\nD=\"a\\\"b\\\\c\\nd\"\nA=again\n")
    assert load_dotenv(path) == {"A": "again", "B": "two words # not a comment", "C": "lit\\n$X",
                                 "D": 'a"b\\c\\nd'}
    path.write_text("GOOD=1\nthis line has the value s3cr3t and no equals sign\n")
    with pytest.raises(SettingsError, match=r"\.env:2") as err:
        load_dotenv(path)
    assert "s3cr3t" not in str(err.value)


def test_github_web_url() -> None:
    assert github_web_url("https://api.github.com") == "https://github.com"
    assert github_web_url("https://ghe.example.com/api/v3") == "https://ghe.example.com"


def test_manifest_keeps_only_what_github_takes() -> None:
    manifest = build_manifest({"name": "x", "url": "https://x.test", "extra": 1,
                               "hook_attributes": {"url": "https://x.test/webhook"}}, redirect_url="http://l/setup/done")
    assert manifest == {"name": "x", "url": "https://x.test", "hook_attributes": {"url": "https://x.test/webhook"},
                        "redirect_url": "http://l/setup/done"}
