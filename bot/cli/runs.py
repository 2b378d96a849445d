"""``python -m bot runs show RUN_ID``: one run as the store keeps it, for as long as it keeps it: its workflow,
state and thread; each step attempt's provenance (the agent, its tier and model, hashes of its prompt and of the
team's rules, the head it read), tokens and cost; and the head a person approved."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from bot.cli.common import on_store, settings_or_exit

if TYPE_CHECKING:
    from bot.store import Store

COLUMNS = ("step", "agent", "tier", "model", "prompt", "rules", "head", "tokens", "cost")


async def _show(store: Store, run_id: str) -> int:
    from bot.logs import printable
    from bot.run.state import provenance

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


def _cell(step: dict[str, Any], column: str) -> str:
    value = step.get(column)
    if column == "cost":
        return f"${float(value or 0):.4f}"
    return "-" if value in (None, "") else str(value)


def cmd_runs(args: argparse.Namespace) -> int:
    settings = settings_or_exit(args, require_app=False, log_level="WARNING")
    if isinstance(settings, int):
        return settings
    return on_store(settings, lambda store: _show(store, args.run_id), "read the run")
