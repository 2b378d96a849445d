"""Reading CI logs: the failing part of a log, and the failing tests and errors named in it.

A GitHub Actions job log can run to megabytes; the model and the people need the few lines around
the failure. Pure functions, shared by the ``get_job_log`` tool and the offline error-detective.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TIMESTAMP = re.compile(r"^\ufeff?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SIGNAL = re.compile(
    r"\bError\b|\bERROR\b|\berror:|FAILED|\bFAIL\b|Traceback \(most recent call last\)|##\[error\]|"
    r"exit code \d+|exited with (?:code|status) \d+|AssertionError|^E {2,}|\bpanic:|npm ERR!")
_PYTEST_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+::\S+|\S+\.py)(?: - (.*))?$")
_PYTEST_E = re.compile(r"^E {2,}(\S.*)$")
_GO_FAIL = re.compile(r"^\s*--- FAIL: (\S+)")
_JEST_FAIL = re.compile(r"^FAIL (\S+\.(?:js|jsx|ts|tsx|mjs))\b")
_GHA_ERROR = re.compile(r"##\[error\](.*)$")
_ERROR_LINE = re.compile(r"^\s*(?:Error|ERROR|error)(?:\[\w+\])?: (.+)$|^npm ERR! (.+)$")
_EXIT = re.compile(r"(?:exit code|exited with (?:code|status)) (\d+)", re.I)
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+), in (\S+)')
_EXC = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Failure)|AssertionError)(?::\s*(.*))?$")
MAX_ITEMS = 20


def clean_lines(log: str) -> list[str]:
    """Log lines without Actions timestamps and terminal colour codes."""
    return [_ANSI.sub("", _TIMESTAMP.sub("", line)).rstrip() for line in (log or "").splitlines()]


def excerpt(log: str, context: int = 4, max_lines: int = 250) -> str:
    """The lines around errors, failures, tracebacks and exit codes, with ``…`` for what was skipped.

    A log with no such line is shown by its last 40 lines, where a failing step usually ends.
    """
    lines = clean_lines(log)
    hits = [i for i, line in enumerate(lines) if _SIGNAL.search(line)]
    if not hits:
        tail = lines[-40:]
        return (f"… ({len(lines) - len(tail)} earlier lines)\n" if len(lines) > len(tail) else "") + "\n".join(tail)
    keep: set[int] = set()
    for i in hits:
        # a traceback's frames follow its header, so keep more after it
        after = 30 if lines[i].startswith("Traceback") else context
        keep.update(range(max(0, i - context), min(len(lines), i + after + 1)))
    out, last = [], -1
    for i in sorted(keep)[:max_lines]:
        if i != last + 1:
            out.append(f"… ({i - last - 1} lines skipped)")
        out.append(lines[i])
        last = i
    if last < len(lines) - 1:
        out.append(f"… ({len(lines) - last - 1} lines skipped)")
    return "\n".join(out)


@dataclass
class Failures:
    """What a log says failed: test ids, error lines and exit codes, each deduplicated in order."""

    tests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    exit_codes: list[str] = field(default_factory=list)

    def add(self, kind: str, value: str) -> None:
        items = getattr(self, kind)
        value = value.strip()
        if value and value not in items and len(items) < MAX_ITEMS:
            items.append(value)

    def __bool__(self) -> bool:
        return bool(self.tests or self.errors or self.exit_codes)


def _traceback_errors(lines: list[str], start: int) -> str | None:
    """"Exc: message (at file:line in func)" for the traceback starting at `start`."""
    frame = None
    for line in lines[start + 1:start + 200]:
        if m := _FRAME.match(line):
            frame = f"{m[1]}:{m[2]} in {m[3]}"
        elif (m := _EXC.match(line.strip())) and not line.startswith((" ", "\t")):
            where = f" (at {frame})" if frame else ""
            return f"{m[1]}: {m[2]}{where}" if m[2] else f"{m[1]}{where}"
    return None


def failures(log: str) -> Failures:
    """Failing tests (pytest, Go, Jest), error lines (pytest ``E``, ``##[error]``, ``Error:``, the last
    frame and exception of each Python traceback) and exit codes named in `log`."""
    lines = clean_lines(log)
    found = Failures()
    for i, line in enumerate(lines):
        if m := _PYTEST_FAILED.match(line):
            found.add("tests", m[1])
            if m[2]:
                found.add("errors", f"{m[1]}: {m[2]}")
        elif m := _GO_FAIL.match(line) or _JEST_FAIL.match(line):
            found.add("tests", m[1])
        if m := _PYTEST_E.match(line):
            found.add("errors", m[1])
        if line.startswith("Traceback (most recent call last)") and (tb := _traceback_errors(lines, i)):
            found.add("errors", tb)
        if m := _GHA_ERROR.search(line):
            found.add("errors", m[1])
        elif m := _ERROR_LINE.match(line):
            found.add("errors", m[1] or m[2])
        if m := _EXIT.search(line):
            found.add("exit_codes", m[1])
    return found
