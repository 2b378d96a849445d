"""``python -m bot triage`` and ``validate``: the Lead's decision and the catalog's check, posting nothing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.cli.common import fail
from bot.core.events import Ignored


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
    """The Lead's decision for what a person has (a payload, gh issue/pr view JSON; ``-`` is stdin), as JSON."""
    from bot.core import shapes, triage
    from bot.core.catalog import load_catalog

    source = "stdin" if args.payload == "-" else args.payload
    payload = read_json(sys.stdin.read if args.payload == "-" else Path(args.payload).read_text, source)
    if isinstance(payload, str):
        return fail(payload)
    try:
        placed = shapes.place(payload, args.event or (None if args.payload == "-" else _event_in_name(args.payload)))
    except shapes.ShapeError as exc:
        return fail(f"{source}: {exc}")
    if isinstance(placed, Ignored):
        decision: dict[str, Any] = {"workflow": None, "reason": placed.reason, "confidence": 0.0, "labels_used": []}
        evidence: dict[str, Any] = {"decided_by": "ignored", "why": placed.reason}
    else:
        for note in placed.notes:
            print(f"triage-lead: note: {note}", file=sys.stderr)
        made, evidence = triage.explain(placed.event, load_catalog(), paths=placed.paths)
        decision, evidence = made.to_json(), {"input": placed.form, "paths": list(placed.paths), **evidence}
    print(json.dumps({**decision, "evidence": evidence} if args.explain else decision, indent=2))
    return 0


def _event_in_name(path: str) -> str | None:
    """The event a ``<event>.<action>.json`` file name (Probot's convention) says, when it names one the bot
    knows (``issues.opened.json``, not ``issue.json`` or ``bug-report.json``: those are placed by shape)."""
    from bot.core.events import HANDLED

    name = Path(path).name.split(".", 1)[0]
    return name if name in HANDLED else None


def read_json(read: Callable[[], str], source: str) -> Any:
    """The JSON object ``read`` returns, or a one-line sentence saying why it cannot be had."""
    try:
        text = read()
    except OSError as exc:
        return f"cannot read {source}: {exc.strerror or exc}"
    except UnicodeDecodeError:
        return f"{source} is not text (UTF-8), so not JSON"
    if not text.strip():
        return f"{source} is empty"
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError) as exc:  # deep nesting recurses
        return f"{source} is not JSON: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return payload if isinstance(payload, dict) else f"{source} does not hold a JSON object"
