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
from bot.setup import MANIFEST_KEYS, SetupError, build_manifest, github_web_url, load_dotenv, run_setup
from bot.settings import SettingsError
from tests.conftest import ROOT

WEB = "https://github.example"


class Setup:
    """A running ``run_setup`` and a browser's view of its pages."""

    def __init__(self, task: asyncio.Task[Path], base: str, lines: list[str], http: aiohttp.ClientSession) -> None:
        self.task, self.base, self.lines, self.http = task, base, lines, http

    async def start_page(self) -> tuple[str, dict[str, Any]]:
        async with self.http.get(self.base + "/") as resp:
            assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
            text = await resp.text()
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


@pytest.fixture
async def start(sandbox: Any, tmp_path: Path) -> Any:
    running: list[Setup] = []
    http = aiohttp.ClientSession()

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
        base = re.search(r"(http://127\.0\.0\.1:\d+)/", lines[0]).group(1)  # type: ignore[union-attr]
        running.append(Setup(task, base, lines, http))
        return running[-1]

    yield go
    for s in running:
        s.task.cancel()
        await asyncio.gather(s.task, return_exceptions=True)
    await http.close()


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


async def test_redirect_writes_the_env_file(start: Any, sandbox: Any, tmp_path: Path, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.add_manifest_code("code-ok", id=777, slug="triage-lead-test", webhook_secret="whsec-3f9a1c0b7d")
    s = await start()
    status, page = await s.done(code="code-ok", state=await s.state())
    assert status == 200 and "credentials are saved" in page
    env_path = await asyncio.wait_for(s.task, 5)
    assert env_path == tmp_path / ".env"
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    env = load_dotenv(env_path)
    assert [w.data["code"] for w in sandbox.written("manifest_conversion")] == ["code-ok"]
    assert env["GITHUB_APP_ID"] == "777" and env["GITHUB_WEBHOOK_SECRET"] == "whsec-3f9a1c0b7d"
    raw = env_path.read_text()
    assert raw.count("\n") == 3 and "\\n" in env["GITHUB_PRIVATE_KEY"]  # the key is one line
    settings = settings_mod.load(env, require_app=True)  # the bot reads it as written
    assert settings.app_id == 777 and settings.webhook_secret == "whsec-3f9a1c0b7d"
    assert settings.private_key and settings.private_key.startswith("-----BEGIN")
    printed = "\n".join(s.lines)
    assert "https://github.com/apps/triage-lead-test/installations/new" in printed
    assert f"python -m bot --env-file {env_path} serve" in printed and "webhook URL" in printed
    body = settings.private_key.splitlines()[1]
    for secret in ("whsec-3f9a1c0b7d", body):  # never on stdout, never in a log
        assert secret not in printed and secret not in caplog.text


async def test_bad_state_is_refused_and_nothing_written(start: Any, sandbox: Any, tmp_path: Path) -> None:
    sandbox.add_manifest_code("code-1")
    s = await start()
    status, page = await s.done(code="code-1", state="not-the-state")
    assert status == 400 and "state" in page
    assert not (tmp_path / ".env").exists()
    assert not [r for r in sandbox.requests if r.path.startswith("/app-manifests/")]  # the code was not spent
    assert not s.task.done()
    status, _ = await s.done(code="code-1", state=await s.state())  # the real redirect still works
    assert status == 200 and (await asyncio.wait_for(s.task, 5)).exists()


async def test_unknown_code_is_a_clear_error(start: Any, tmp_path: Path) -> None:
    s = await start()
    status, page = await s.done(code="no-such-code", state=await s.state())
    assert status == 400 and "did not accept the code" in page and "404" in page and "expires" in page
    assert not (tmp_path / ".env").exists() and not s.task.done()  # one can start again


async def test_existing_keys_are_kept_unless_forced(start: Any, sandbox: Any, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# mine\nDATABASE_URL=sqlite:///data/bot.sqlite3\nGITHUB_APP_ID=1\n")
    with pytest.raises(SetupError, match="GITHUB_APP_ID.*--force"):
        await start()  # refused before anything is registered on GitHub
    sandbox.add_manifest_code("code-2", id=9)
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
