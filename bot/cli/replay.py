"""``python -m bot replay PAYLOAD.json``: one real payload through the whole bot, against the sandbox.

Everything is real but GitHub itself: the payload is signed and posted to the bot's ``/webhook``
over HTTP, the job runs, and the bot talks to the built-in sandbox GitHub through gidgethub. What
the bot wrote is printed as Markdown, in order. No credentials are needed: a throwaway App key and
webhook secret are generated for the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot import settings as settings_mod
from bot.cli.common import fail, read_payload, start_logging
from bot.run.runtime import Runtime
from bot.sandbox.github import SandboxGitHub
from bot.sandbox.keys import throwaway_key
from bot.settings import Settings, SettingsError
from bot.web.server import sign

SANDBOX_APP_ID = 1


def event_name_for(path: Path) -> str:
    """Fixtures are named ``<event>.<action>.json`` (Probot's convention)."""
    return path.name.split(".", 1)[0]


@dataclass
class ReplayResult:
    status: int
    answer: dict[str, Any]
    writes: list[Any]


async def replay(payload: dict[str, Any], event: str, *, settings: Settings | None = None,
                 timeout: float = 60.0) -> ReplayResult:
    private, public = throwaway_key()
    sandbox = SandboxGitHub(app_id=SANDBOX_APP_ID, app_public_key_pem=public)
    url = await sandbox.start()
    sandbox.seed_from_payload(payload)
    base = settings or Settings()
    settings = base.with_overrides(app_id=SANDBOX_APP_ID, private_key=private,
                                   webhook_secret=secrets.token_hex(16), github_api_url=url,
                                   database_url="sqlite:///:memory:", write_spacing=0.0)
    runtime = await Runtime(settings, github_max_wait=5.0).start()
    runner = web.AppRunner(runtime.web_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        body = json.dumps(payload).encode()
        headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
                   "X-Hub-Signature-256": sign(settings.webhook_secret or "", body),
                   "Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/replay"}
        async with aiohttp.ClientSession() as client:
            async with client.post(f"http://127.0.0.1:{port}/webhook", data=body, headers=headers) as resp:
                status, answer = resp.status, await resp.json()
        await runtime.jobs.drained(timeout)
        return ReplayResult(status=status, answer=answer, writes=list(sandbox.writes))
    finally:
        await runner.cleanup()
        await runtime.close()
        await sandbox.close()


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.strip().splitlines()) or ">"


def transcript(result: ReplayResult, event: str, source: str) -> str:
    """What the bot posted, as Markdown a person can read top to bottom."""
    lines = [f"# Replay of `{source}` ({event})", "",
             f"Webhook answered **{result.status}**: `{json.dumps(result.answer)}`", ""]
    if not result.writes:
        lines.append("_The bot wrote nothing to GitHub._")
    for i, w in enumerate(result.writes, 1):
        where = f"{w.repo}#{w.number}" if w.number else w.repo
        lines.append(f"## {i}. {w.kind} on {where}")
        lines.append("")
        data = w.data or {}
        if isinstance(data.get("body"), str):
            lines.append(_quote(data["body"]))
        else:
            lines.append("```json\n" + json.dumps(data, indent=2, sort_keys=True)[:4000] + "\n```")
        lines.append("")
    return "\n".join(lines)


def cmd_replay(args: argparse.Namespace) -> int:
    path = Path(args.payload)
    payload = read_payload(path)
    if isinstance(payload, str):
        return fail(payload)
    try:
        settings = settings_mod.load(require_app=False)
    except SettingsError as exc:
        return fail(str(exc))
    start_logging(args.log_level or "WARNING")
    event = args.event or event_name_for(path)
    result = asyncio.run(replay(payload, event, settings=settings))
    print(transcript(result, event, str(path)))
    return 0 if result.status < 400 else 1
