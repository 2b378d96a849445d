"""What every verb shares: one-line failures, logging, the .env file, reading a payload."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bot.logs import setup_logging


def fail(message: str) -> int:
    print(f"triage-lead: {message}", file=sys.stderr)
    return 2


def start_logging(level: str) -> None:
    setup_logging(level)  # JSON lines when stderr is not a terminal, plain text when it is


def env(args: argparse.Namespace) -> dict[str, str]:
    """The --env-file (default .env) under the real environment: a variable set in the environment wins."""
    from bot.cli.envfile import load_dotenv  # loaded only by the verbs that read it

    return {**load_dotenv(Path(args.env_file)), **os.environ}


def read_payload(path: Path) -> Any:
    """The JSON payload in ``path``, or a sentence saying why it cannot be read."""
    try:
        payload = json.loads(path.read_text())
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    except ValueError as exc:
        return f"{path} is not JSON: {exc}"
    return payload if isinstance(payload, dict) else f"{path} does not hold a JSON object"
