"""``python -m bot jobs``: list failed jobs, run them again or let them go."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from bot.cli.common import fail, on_store, settings_or_exit

if TYPE_CHECKING:
    from bot.store import Store


async def _jobs(store: Store, retry: list[int], retry_all: bool, dismiss: bool = False) -> int:
    from bot.logs import printable, scrub

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


def cmd_jobs(args: argparse.Namespace) -> int:
    from bot.logs import add_secret

    settings = settings_or_exit(args, require_app=False, log_level="WARNING")
    if isinstance(settings, int):
        return settings
    for value in (settings.webhook_secret, settings.anthropic_api_key):  # errors stored before this redaction
        add_secret(value)
    acting = args.action in ("retry", "dismiss")
    ids = args.ids if acting else []
    if acting and not ids and not args.all:
        return fail(f"jobs {args.action} takes job ids, or --all")
    return on_store(settings, lambda store: _jobs(store, ids, acting and args.all, dismiss=args.action == "dismiss"),
                    "read the jobs")
