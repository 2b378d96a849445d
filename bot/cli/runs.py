"""``python -m bot runs show RUN_ID``: one run as the store keeps it, for as long as it keeps it: its workflow,
state and thread; each step attempt's provenance (the agent, its tier and model, hashes of its prompt and of the
team's rules, the head it read), tokens and cost; and the head a person approved."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from typing import Any

from bot import settings as settings_mod
from bot.cli.common import env, fail, start_logging
from bot.settings import SettingsError

_CREDENTIALS = re.compile(r"://[^/@\s]*@")  # a database URL's user and password, in a driver's message
COLUMNS = ("step", "agent", "tier", "model", "prompt", "rules", "head", "tokens", "cost")


async def _show(settings: settings_mod.Settings, run_id: str) -> int:
    from bot.logs import printable
    from bot.run.writes import provenance
    from bot.store import open_store

    store = await open_store(settings.database_url)
    try:
        record = await store.load_run(run_id)
        if record is None:
            print(f"no run {printable(run_id)!r} in the store (finished runs are kept for the retention period)",
                  file=sys.stderr)
            return 1
        print(printable(f"run {record.id}: {record.workflow}, {record.state}, on {record.thread}"))
        print("\t".join(COLUMNS))
        for step in await provenance(store, run_id):
            print("\t".join(printable(_cell(step, c)) for c in COLUMNS))
        run = record.data.get("run") if isinstance(record.data, dict) else None
        approval = run.get("approval") if isinstance(run, dict) else None
        if isinstance(approval, dict) and approval.get("by"):
            print(printable(f"approved by {approval['by']} at head {approval.get('head_sha') or 'unknown'}"))
        return 0
    finally:
        await store.close()


def _cell(step: dict[str, Any], column: str) -> str:
    value = step.get(column)
    if column == "cost":
        return f"${float(value or 0):.4f}"
    return "-" if value in (None, "") else str(value)


def cmd_runs(args: argparse.Namespace) -> int:
    try:
        settings = settings_mod.load(env(args), require_app=False)
    except SettingsError as exc:
        return fail(str(exc))
    start_logging(args.log_level or "WARNING")
    try:
        return asyncio.run(_show(settings, args.run_id))
    except Exception as exc:  # the store is unreachable: one line, no traceback, no credentials of its URL
        why = _CREDENTIALS.sub("://", str(exc))
        return fail(f"could not read the run: {type(exc).__name__}: {why}")
