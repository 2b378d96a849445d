"""Hidden HTML markers in the bot's own text, so it can find and edit what it posted.

GitHub has no idempotency key: before creating, the bot looks for its marker, and a retried or
resumed step edits instead of posting twice. Markers render as nothing on GitHub.
"""

from __future__ import annotations

import re

PREFIX = "triage-lead"
_MARKER = re.compile(r"<!-- triage-lead:([A-Za-z0-9_.:/#-]+) -->")
_TRAILING = re.compile(r"<!-- triage-lead:([A-Za-z0-9_.:/#-]+) -->\s*\Z")


def marker(*parts: object) -> str:
    """``marker("ack", "o/r#1")`` → ``<!-- triage-lead:ack:o/r#1 -->``."""
    key = ":".join(str(p) for p in parts)
    if not re.fullmatch(r"[A-Za-z0-9_.:/#-]+", key):
        raise ValueError(f"marker parts must be simple tokens: {key!r}")
    return f"<!-- {PREFIX}:{key} -->"


def with_marker(body: str, mark: str) -> str:
    """``body`` with ``mark`` as its last line. Any marker already in ``body`` (quoted model output, an issue's
    text, a file's content) is broken first: the only live marker in what the bot posts is its own, at the end."""
    return f"{neutralise(body).rstrip()}\n\n{mark}\n"


def trailing(text: str | None) -> str | None:
    """The key of the marker that ends ``text``, where :func:`with_marker` puts it; a marker anywhere else
    (quoted, pasted, forged in the middle of someone's text) is not the bot's."""
    m = _TRAILING.search(text or "")
    return m.group(1) if m else None


def markers_in(text: str) -> list[str]:
    """Every marker key in ``text`` (for tests and tools that list what was posted; to recognise the bot's own
    text, use :func:`trailing` on something its own account wrote)."""
    return _MARKER.findall(text or "")


# Spacing and case variants too: no marker-like text passes, whatever a reader (or a later regex) makes of it.
_FORGED = re.compile(r"<!--(\s*)triage-lead(\s*):", re.I)


def neutralise(text: str) -> str:
    """Break any marker in untrusted text so nobody can forge one the bot would later edit."""
    return _FORGED.sub(lambda m: f"{m.group()[:-1]}\u200b:", text)


_WRITTEN = re.compile(r"\n\n(<!-- triage-lead:[A-Za-z0-9_.:/#-]+ -->\n)\Z")


def split_trailing(text: str) -> tuple[str, str]:
    """(``text`` before its marker, the marker) for a body :func:`with_marker` wrote, whose one live marker is
    its last line (every other was broken); (``text``, "") for any other text, whatever marker it ends with.
    The GitHub client defuses the first part of what the bot posts and keeps the marker as it is."""
    m = _WRITTEN.search(text)
    return (text[:m.start(1)], m.group(1)) if m else (text, "")
