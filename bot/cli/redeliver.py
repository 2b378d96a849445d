"""``python -m bot redeliver``: ask GitHub to redeliver the App's failed deliveries."""

from __future__ import annotations

import argparse
import asyncio

from bot import settings as settings_mod
from bot.cli.common import env, fail, start_logging
from bot.settings import SettingsError


async def _redeliver(settings: settings_mod.Settings, since: object, dry_run: bool) -> int:
    import aiohttp

    from bot.github.client import GitHubApp
    from bot.run.redeliver import redeliver

    async with aiohttp.ClientSession() as session:
        outcome = await redeliver(GitHubApp(settings, session), since, dry_run=dry_run)  # type: ignore[arg-type]
    verb = "would redeliver" if dry_run else "redelivered"
    for d in outcome.redelivered:
        print(f"{verb} {d['guid']} ({d.get('event')}.{d.get('action') or '-'}, {d.get('status')}, {d['delivered_at']})")
    print(f"{len(outcome.redelivered)} {verb}; {outcome.skipped} failed deliveries already redelivered")
    return 0


def cmd_redeliver(args: argparse.Namespace) -> int:
    from bot.run.redeliver import parse_since

    try:
        settings = settings_mod.load(env(args), require_app=True)
        since = parse_since(args.since)
    except (SettingsError, ValueError) as exc:
        return fail(str(exc))
    start_logging(args.log_level or "WARNING")
    try:
        return asyncio.run(_redeliver(settings, since, args.dry_run))
    except Exception as exc:  # GitHub refused or is unreachable: one line, no traceback
        return fail(f"could not list or redeliver deliveries: {type(exc).__name__}: {exc}")
