"""Hidden HTML markers in the bot's own text, so it can find and edit what it posted.

GitHub has no idempotency key: before creating, the bot looks for its marker, and a retried or
resumed step edits instead of posting twice. Markers render as nothing on GitHub.
"""

from __future__ import annotations

import re

PREFIX = "triage-lead"
_MARKER = re.compile(r"<!-- triage-lead:([A-Za-z0-9_.:/#-]+) -->")


def marker(*parts: object) -> str:
    """``marker("ack", "o/r#1")`` → ``<!-- triage-lead:ack:o/r#1 -->``."""
    key = ":".join(str(p) for p in parts)
    if not re.fullmatch(r"[A-Za-z0-9_.:/#-]+", key):
        raise ValueError(f"marker parts must be simple tokens: {key!r}")
    return f"<!-- {PREFIX}:{key} -->"


def with_marker(body: str, mark: str) -> str:
    return f"{body.rstrip()}\n\n{mark}\n"


def markers_in(text: str) -> list[str]:
    """Every marker key in ``text`` (used to find the bot's own comments)."""
    return _MARKER.findall(text or "")


def neutralise(text: str) -> str:
    """Break any marker in untrusted text so nobody can forge one the bot would later edit."""
    return text.replace("<!-- triage-lead:", "<!-- triage-lead\u200b:")
