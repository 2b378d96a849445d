"""What a GitHub patch says about the new side of a file: the lines a review comment may sit on, the lines a push
added, and the files a pull request changes, renames or removes at one head. Pure: no I/O (bot/core/findings.py
re-exports these for its callers)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

_HUNK = re.compile(r"@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_HEADER = ("+++ ", "--- ", "diff ", "index ")  # git's file header lines, before the first hunk


def diff_lines(patch: str) -> Iterator[tuple[int, str, bool]]:
    """(new-file line number, text, added?) of each line on the new side of a patch's hunks, as GitHub returns a
    patch: the lines a review comment may sit on, and the added lines the checks read. A file header (``+++ b/x``)
    can only come before the first hunk: inside one, a line starting with ``+++`` is an added line whose text starts
    with ``++``. An added line before any hunk (no patch GitHub sends, but one the checks must not pass unread)
    has no line number known: 0, never an invented one."""
    line, in_hunk = 0, False
    for raw in patch.splitlines():
        if m := _HUNK.match(raw):
            line, in_hunk = int(m[1]), True
        elif not in_hunk:
            if raw.startswith("+") and not raw.startswith(_HEADER):
                yield 0, raw[1:], True
        elif not raw.startswith(("-", "\\")):
            yield line, raw[1:], raw.startswith("+")
            line += 1


def present(f: Mapping[str, Any]) -> bool:
    """Whether a file GitHub lists as changed is there at the head (one removed has no lines to check or comment on)."""
    return f.get("status") != "removed"


def hunks(files: Iterable[Mapping[str, Any]]) -> dict[str, dict[int, str]]:
    """Each changed file's new-side hunk lines (number → text), from a pull request's files at one head."""
    return {str(f.get("filename")): {n: text for n, text, _ in diff_lines(str(f.get("patch") or "")) if n}
            for f in files if present(f)}


def renames(files: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The files GitHub lists as renamed: earlier name → name now (its ``previous_filename``). A file ``copied``
    has one too, but its source is still there with its findings: only a rename moves them."""
    return {str(f["previous_filename"]): str(f.get("filename")) for f in files
            if f.get("status") == "renamed" and isinstance(f.get("previous_filename"), str) and f["previous_filename"]}
