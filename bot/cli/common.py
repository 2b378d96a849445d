"""What every verb shares: one-line failures, logging, the .env file, the operator's settings, the store, reading a
payload."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.logs import setup_logging

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.store import Store

_CREDENTIALS = re.compile(r"://[^/@\s]*@")  # a database URL's user and password, in a driver's message


def fail(message: str) -> int:
    print(f"triage-lead: {message}", file=sys.stderr)
    return 2


def start_logging(level: str) -> None:
    setup_logging(level)  # JSON lines when stderr is not a terminal, plain text when it is


def env(args: argparse.Namespace) -> dict[str, str]:
    """The --env-file (default .env) under the real environment: a variable set in the environment wins."""
    from bot.cli.envfile import load_dotenv  # loaded only by the verbs that read it

    return {**load_dotenv(Path(args.env_file)), **os.environ}


def settings_or_exit(args: argparse.Namespace, *, require_app: bool, log_level: str) -> Settings | int:
    """The operator's settings (the environment over --env-file), with logging started at ``--log-level`` (else
    `log_level`); an exit status, the reason printed in one line, when they cannot be read."""
    from bot import settings as settings_mod

    try:
        settings = settings_mod.load(env(args), require_app=require_app)
    except (settings_mod.SettingsError, ValueError) as exc:  # ValueError: a URL no parser reads (an IPv6 typo)
        return fail(str(exc))
    start_logging(args.log_level or log_level)
    return settings


def on_store(settings: Settings, work: Callable[[Store], Awaitable[int]], doing: str) -> int:
    """`work` on the store the settings name, opened for it and closed after whatever happens: its exit status. A
    store that cannot be reached (or fails meanwhile) is one line saying what could not be done, no traceback, and
    never the credentials of its URL (a driver's message may quote it)."""
    async def go() -> int:
        from bot.store import open_store

        store = await open_store(settings.database_url)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go())
    except Exception as exc:
        return fail(f"could not {doing}: {type(exc).__name__}: {_CREDENTIALS.sub('://', str(exc))}")


def read_payload(path: Path) -> Any:
    """The JSON payload in ``path``, or a sentence saying why it cannot be read."""
    try:
        payload = json.loads(path.read_text())
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    except ValueError as exc:
        return f"{path} is not JSON: {exc}"
    return payload if isinstance(payload, dict) else f"{path} does not hold a JSON object"
