"""``python -m bot jobs``: list failed jobs, run them again or let them go."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot import settings as settings_mod
from bot.cli.common import env, fail, start_logging
from bot.settings import SettingsError


async def _jobs(settings: settings_mod.Settings, retry: list[int], retry_all: bool, dismiss: bool = False) -> int:
    from bot.logs import add_secret, printable, scrub
    from bot.store import open_store

    for value in (settings.webhook_secret, settings.anthropic_api_key):  # errors stored before this redaction
        add_secret(value)

    store = await open_store(settings.database_url)
    try:
        failed = await store.failed_jobs(limit=1000)
        if not retry and not retry_all:
            for info in failed:
                error = printable(scrub(info.error.splitlines()[0]))[:160] if info.error else ""
                print(f"{info.job.id}\t{info.job.delivery_id}\t{info.job.event}\t{info.job.thread}\t"
                      f"{info.job.attempts} attempt(s)\t{error}")
            print(f"{len(failed)} failed job(s)" + ("; `python -m bot jobs retry ID` or `--all` runs them again"
                                                    if failed else ""))
            return 0
        wanted = [info.job.id for info in failed] if retry_all else retry
        act = store.dismiss_failed if dismiss else store.requeue_failed
        done = [job_id for job_id in wanted if await act(job_id)]
        for job_id in sorted(set(wanted) - set(done)):
            print(f"job {job_id} is not a failed job; left as it is", file=sys.stderr)
        if dismiss:
            print(f"{len(done)} job(s) dismissed (their payloads go at the next retention pass)")
        else:
            print(f"{len(done)} job(s) queued again" + (" (a running `serve` takes them within seconds)" if done else ""))
        return 0 if len(done) == len(set(wanted)) else 1
    finally:
        await store.close()


def cmd_jobs(args: argparse.Namespace) -> int:
    try:
        settings = settings_mod.load(env(args), require_app=False)
    except SettingsError as exc:
        return fail(str(exc))
    start_logging(args.log_level or "WARNING")
    acting = args.action in ("retry", "dismiss")
    ids = args.ids if acting else []
    if acting and not ids and not args.all:
        return fail(f"jobs {args.action} takes job ids, or --all")
    try:
        return asyncio.run(_jobs(settings, ids, acting and args.all, dismiss=args.action == "dismiss"))
    except Exception as exc:  # the store is unreachable: one line, no traceback
        return fail(f"could not read the jobs: {type(exc).__name__}: {exc}")
