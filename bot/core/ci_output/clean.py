"""Log lines as a person reads them: no Actions timestamps, BOM or terminal colour codes."""

from __future__ import annotations

import re

_TIMESTAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def clean_lines(log: str) -> list[str]:
    """Log lines without Actions timestamps and terminal colour codes."""
    return [_ANSI.sub("", _TIMESTAMP.sub("", line)).rstrip() for line in (log or "").splitlines()]
