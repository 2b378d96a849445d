"""Commands in comments: ``/approve [N]``, ``/escalate [reason]``, ``/status``, ``/retry``, ``/cancel``, ``/help``.

Pure parsing. A command stands at the start of a line, outside code blocks (fenced or indented),
quotes and inline code. On an edited comment only commands that were not there before count, so
editing a typo does not approve twice (triagebot's rule).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KNOWN = ("approve", "escalate", "status", "retry", "cancel", "help")
NEEDS_WRITE = frozenset({"approve", "escalate", "retry", "cancel"})
_LINE = re.compile(r"^/([A-Za-z][A-Za-z-]{0,30})(?:[ \t]+(.*))?$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)


@dataclass(frozen=True)
class Parsed:
    name: str  # one of KNOWN, or the unknown word
    arg: str = ""
    known: bool = True

    @property
    def option(self) -> int | None:
        """``/approve 2`` → 2; None when no number was given."""
        m = re.match(r"#?(\d{1,3})\b", self.arg)
        return int(m.group(1)) if m else None


def _command_lines(body: str) -> list[str]:
    """Lines GitHub renders as plain text: not in a code block, not in a quote (lazy lines included)."""
    lines: list[str] = []
    fence: str | None = None  # the opening fence; only the same character, at least as long, closes it
    quoted = False
    # An HTML comment renders as nothing: what it holds is not a command a reader could see.
    for raw in _HTML_COMMENT.sub("", body.replace("\r\n", "\n")).split("\n"):
        m = _FENCE.match(raw)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not raw[m.end():].strip():
                fence = None
            continue
        if m:
            fence, quoted = m.group(1), False
            continue
        if raw.lstrip().startswith(">"):
            # Only an open paragraph in the quote continues lazily onto the next line; an empty ">" does not.
            quoted = bool(raw.lstrip().lstrip(">").strip())
            continue
        if not raw.strip():
            quoted = False
            continue
        if quoted or raw.startswith(("    ", "\t")):
            continue  # a quote's lazy continuation line, or indented code
        lines.append(raw.strip())
    return lines


def parse(body: str) -> list[Parsed]:
    """Every command in a comment body, in order."""
    found = []
    for line in _command_lines(body or ""):
        m = _LINE.match(line)
        if not m:
            continue
        name, arg = m.group(1).lower(), (m.group(2) or "").strip()
        found.append(Parsed(name, arg[:500], name in KNOWN))
    return found


def new_commands(body: str, previous: str | None) -> list[Parsed]:
    """Commands in ``body`` that were not in ``previous`` (the comment before an edit)."""
    before = set(parse(previous or "")) if previous is not None else set()
    return [c for c in parse(body) if c not in before]


def may_run(name: str, role: str) -> bool:
    """Whether a collaborator role (GitHub's ``role_name``) may run a command."""
    return name not in NEEDS_WRITE or role in ("admin", "maintain", "write")
