"""``python -m bot triage`` and ``validate``: the Lead's decision and the catalog's check, posting nothing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bot.cli.common import fail, read_payload


def cmd_validate(args: argparse.Namespace) -> int:
    """Check every workflow and agent file (CI runs this); exit 1 listing each problem."""
    from bot.core.catalog import DEFAULT_ROOT, validate_paths

    root = Path(args.root) if args.root else DEFAULT_ROOT
    problems = validate_paths(root)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s) in {root}", file=sys.stderr)
        return 1
    print(f"{root}: all workflow and agent files are valid")
    return 0


def cmd_triage(args: argparse.Namespace) -> int:
    """The Lead's decision for a payload, as JSON, without posting anything."""
    from bot.cli.replay import event_name_for
    from bot.core import events, triage
    from bot.core.catalog import load_catalog

    path = Path(args.payload)
    payload = read_payload(path)
    if isinstance(payload, str):
        return fail(payload)
    event = events.parse(args.event or event_name_for(path), payload, "triage-cli")
    if isinstance(event, (events.Ignored, events.Malformed)):
        print(json.dumps({"workflow": None, "reason": event.reason, "confidence": 0.0, "labels_used": []}, indent=2))
        return 0
    if not isinstance(event, (events.WorkItem, events.CiFailure)):
        return fail(f"{event.event} events are not triaged")
    print(json.dumps(triage.decide(event, load_catalog()).to_json(), indent=2))
    return 0
