"""Shared fixtures: one fake of each outside service, speaking HTTP like the real one."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.run.runtime import Runtime
from bot.sandbox.keys import throwaway_key
from bot.settings import Settings
from bot.store.sqlite import SQLiteStore
from bot.web.server import sign

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SECRET = "test-webhook-secret"
APP_ID = 4242
INSTALLATION = 2311213  # the installation id in fixtures/*.json
NPM_CACHE = Path(os.environ.get("TRIAGE_LEAD_NPM_CACHE", Path.home() / ".cache" / "triage-lead" / "npm"))


@pytest.fixture(scope="session")
def app_keys() -> tuple[str, str]:
    """A key pair generated for this test session: no key is ever committed."""
    return throwaway_key()


@contextlib.contextmanager
def log_lines(*, json: bool) -> Iterator[io.StringIO]:
    """What the bot logs meanwhile, as it would reach stderr (JSON lines, or the plain text of a terminal)."""
    from bot.logs import setup_logging

    out = io.StringIO()
    setup_logging("INFO", json=json, stream=out)
    try:
        yield out
    finally:
        setup_logging("WARNING", json=False)


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@functools.cache
def load_github_openapi() -> tuple[Any, str]:
    """(GitHub's REST description indexed, "") or (None, why not): npm's ``@octokit/openapi`` installed into
    the npm cache folder on first use, never copied into the repository; loaded once per session."""
    from bot.sandbox.openapi import SPEC_IN_PACKAGE, GitHubOpenAPI

    spec = NPM_CACHE / SPEC_IN_PACKAGE
    if not spec.exists():
        npm = shutil.which("npm")
        if npm is None:
            return None, "npm is not installed: cannot fetch @octokit/openapi (GitHub's REST description)"
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--prefix", str(NPM_CACHE), "--no-audit", "--no-fund", "--silent",
                               "@octokit/openapi@23"], capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not spec.exists():
            return None, f"npm could not install @octokit/openapi: {done.stderr.strip()[:300]}"
    return GitHubOpenAPI.from_file(spec), ""


@pytest.fixture(scope="session")
def github_openapi() -> Any:
    """GitHub's REST description as a request checker, or None where npm cannot fetch it (the sandbox then
    runs unchecked; tests that need the description skip with ``load_github_openapi()[1]``)."""
    return load_github_openapi()[0]


@pytest.fixture
async def sandbox(app_keys: tuple[str, str], github_openapi: Any) -> AsyncIterator[Any]:
    """The sandbox GitHub; with the description at hand every request is checked against it, and a test whose
    code sent one GitHub's description does not allow fails at teardown, naming the request."""
    from bot.sandbox.github import SandboxGitHub

    gh = SandboxGitHub(app_id=APP_ID, app_public_key_pem=app_keys[1], validator=github_openapi)
    await gh.start()
    gh.add_installation(INSTALLATION, "Codertocat")
    yield gh
    await gh.close()
    assert not gh.conformance_errors, "requests that GitHub's REST description does not allow:\n" + "\n".join(
        dict.fromkeys(gh.conformance_errors))


@pytest.fixture
def settings(sandbox: Any, app_keys: tuple[str, str], tmp_path: Path) -> Settings:
    # No write spacing in tests: pacing has its own test; here it would only make the suite slow.
    return Settings(app_id=APP_ID, private_key=app_keys[0], webhook_secret=SECRET, write_spacing=0.0, job_retry_base=0.005,
                    github_api_url=sandbox.url, database_url=f"sqlite:///{tmp_path / 'bot.sqlite3'}")


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    rt = await Runtime(settings, github_max_wait=5.0, github_backoff=0.01).start()
    yield rt
    await rt.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """A SQLite store opened in the test's folder, closed after it."""
    store = SQLiteStore(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def client(runtime: Runtime, aiohttp_client: Any) -> Any:
    return await aiohttp_client(runtime.web_app())


def webhook_headers(event: str, body: bytes, *, delivery: str | None = None, secret: str = SECRET) -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(secret, body), "Content-Type": "application/json",
            "User-Agent": "GitHub-Hookshot/test"}


async def post_webhook(client: Any, event: str, payload: Any, *, delivery: str | None = None) -> Any:
    body = json.dumps(payload).encode()
    return await client.post("/webhook", data=body, headers=webhook_headers(event, body, delivery=delivery))


@pytest.fixture(scope="session")
def webhook_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every example payload of the npm package @octokit/webhooks-examples, as (event, payload).

    Installed with npm into a cache folder on first use; never copied into the repository.
    """
    index = NPM_CACHE / "node_modules" / "@octokit" / "webhooks-examples" / "api.github.com" / "index.json"
    if not index.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot fetch @octokit/webhooks-examples")
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([npm, "install", "--prefix", str(NPM_CACHE), "--no-audit", "--no-fund",
                               "--silent", "@octokit/webhooks-examples@7"], capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0 or not index.exists():
            pytest.skip(f"npm could not install @octokit/webhooks-examples: {done.stderr.strip()[:300]}")
    return [(group["name"], example) for group in json.loads(index.read_text()) for example in group["examples"]]
