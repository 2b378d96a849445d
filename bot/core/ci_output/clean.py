"""Log lines as a person reads them: no BOM, Actions timestamps, terminal colour codes or group markers.

One cleaned line per raw line: the log is split on ``\\n`` only (as GitHub numbers a job log's lines), so
index ``i`` of the result is line ``i + 1`` of the raw log and a line number found here links to the same
line there. Nothing is dropped; a line that was only decoration (``##[endgroup]``) becomes empty.
"""

from __future__ import annotations

import re

MAX_LINE = 4000  # characters kept of one line: a minified bundle or a base64 blob is not read further

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?")
# CSI (colours, cursor moves), OSC (titles, hyperlinks; ended by BEL or ST) and the two-byte escapes.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Structure, not severity: the group title and the command stay, the marker goes. ``##[error]``,
# ``##[warning]``, ``##[notice]`` and ``##[debug]`` stay, since they say what the runner flagged.
_STRUCTURE = re.compile(r"^##\[(?:group|endgroup|command|section)\]")


def clean_line(raw: str) -> str:
    """One raw log line as a person reads it."""
    line = raw[: MAX_LINE * 4].rstrip("\r")
    if "\r" in line:  # a progress bar redrawn in place: the terminal shows what came last
        line = next((part for part in reversed(line.split("\r")) if part.strip()), "")
    # twice: a log pasted with its timestamps and served again by GitHub carries two
    line = _TIMESTAMP.sub("", _TIMESTAMP.sub("", line.lstrip("\ufeff"), count=1), count=1)
    line = _CONTROL.sub("", _ANSI.sub("", line))
    line = _STRUCTURE.sub("", line.lstrip("\ufeff"), count=1).rstrip()
    return line if len(line) <= MAX_LINE else line[:MAX_LINE] + " …"


def clean_lines(log: str) -> list[str]:
    """The lines of `log` (a raw job log, or text pasted from one), cleaned; line ``i + 1`` of the raw log is
    index ``i``. Anything but a string reads as an empty log."""
    if not isinstance(log, str) or not log:
        return []
    raw = log.split("\n")
    if raw[-1] == "":  # the newline that ends the last line does not start another
        raw.pop()
    return [clean_line(line) for line in raw]
