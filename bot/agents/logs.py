"""The failing part of a CI log, for the model's ``get_job_log`` and ``get_check_output`` tools.

A GitHub Actions job log can run to megabytes; the model needs the few lines around the failure. What failed
(tests, the root error, an infrastructure failure) is read by bot/core/ci_output, the one reader of CI output
that the CI-failure issue and the offline error-detective share; this only cuts a log down for a model to read.
"""

from __future__ import annotations

import re

from bot.core.ci_output.clean import clean_lines

_SIGNAL = re.compile(
    r"\bError\b|\bERROR\b|\berror:|FAILED|\bFAIL\b|Traceback \(most recent call last\)|##\[error\]|"
    r"exit code \d+|exited with (?:code|status) \d+|AssertionError|^E {2,}|\bpanic:|npm ERR!")


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
