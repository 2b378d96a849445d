"""Command line: ``serve`` (the App), ``replay`` (a payload against the sandbox)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from bot import settings as settings_mod
from bot.settings import SettingsError


def _fail(message: str) -> int:
    print(f"triage-lead: {message}", file=sys.stderr)
    return 2


def _logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


async def _serve(settings: settings_mod.Settings) -> None:
    from aiohttp import web

    from bot.runtime import Runtime

    runtime = await Runtime(settings).start()
    runner = web.AppRunner(runtime.web_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", settings.port)
    await site.start()
    logging.getLogger("bot").info("serving on port %d (GitHub API %s)", settings.port, settings.github_api_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await runtime.close()


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_mod.load(require_app=True)
    except SettingsError as exc:
        return _fail(str(exc))
    _logging(args.log_level or "INFO")
    try:
        asyncio.run(_serve(settings))
    except OSError as exc:
        return _fail(f"cannot serve on port {settings.port}: {exc.strerror}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    try:
        settings = settings_mod.load(require_app=True)
    except SettingsError as exc:
        return _fail(str(exc))
    if settings.database_url.startswith("sqlite"):
        return _fail("on SQLite the jobs run inside `serve`; a separate worker needs DATABASE_URL=postgresql://...")
    return _fail("the PostgreSQL worker is not built yet")


def cmd_replay(args: argparse.Namespace) -> int:
    from bot.replay import event_name_for, replay, transcript

    path = Path(args.payload)
    try:
        payload = json.loads(path.read_text())
    except OSError as exc:
        return _fail(f"cannot read {path}: {exc.strerror}")
    except ValueError as exc:
        return _fail(f"{path} is not JSON: {exc}")
    try:
        settings = settings_mod.load(require_app=False)
    except SettingsError as exc:
        return _fail(str(exc))
    _logging(args.log_level or "WARNING")
    event = args.event or event_name_for(path)
    result = asyncio.run(replay(payload, event, settings=settings))
    print(transcript(result, event, str(path)))
    return 0 if result.status < 400 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description="triage-lead: a GitHub App that runs a team of LLM specialists")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default: INFO for serve, WARNING otherwise)")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the GitHub App's webhook server and job runner")
    serve.set_defaults(func=cmd_serve)
    worker = sub.add_parser("worker", help="run jobs from a PostgreSQL store (the Procfile's worker process)")
    worker.set_defaults(func=cmd_worker)
    rep = sub.add_parser("replay", help="push a webhook payload through the bot against the sandbox GitHub")
    rep.add_argument("payload", help="a payload file named <event>.<action>.json")
    rep.add_argument("--event", help="the X-GitHub-Event name, if the file name does not say it")
    rep.set_defaults(func=cmd_replay)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
