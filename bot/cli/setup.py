"""``python -m bot setup``: register the GitHub App from ``app.yml`` and write its credentials to ``.env``.

GitHub's App-manifest flow: a local page POSTs the manifest to GitHub, the person names and creates the
App there, GitHub sends the browser back here with a one-time code, and the code is exchanged
(unauthenticated) for the App's id, webhook secret and private key. Those go to ``.env`` (mode 0600)
and nowhere else: not to the terminal, not to a log, not to a page.

Its parts: ``bot/cli/manifest.py`` (the manifest and the checks on the App returned), ``bot/cli/setup_page.py``
(the local pages), ``bot/cli/envfile.py`` (the ``.env`` format).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import webbrowser
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from bot import settings as settings_mod
from bot.cli.common import fail, start_logging
from bot.cli.envfile import SetupError, check_env, load_dotenv
from bot.cli.manifest import MANIFEST_KEYS, STATE_TTL, build_manifest, default_manifest, github_web_url, read_manifest
from bot.cli.setup_page import Flow, make_setup_app
from bot.settings import SettingsError

__all__ = ["MANIFEST_KEYS", "STATE_TTL", "SetupError", "build_manifest", "cmd_setup", "github_web_url", "load_dotenv",
           "run_setup"]


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
