"""Commands in comments: ``/approve [N]``, ``/escalate [reason]``, ``/status``, ``/retry``, ``/cancel``, ``/help``.

Pure parsing. A command stands at the start of a line, outside code blocks (fenced or indented),
quotes and inline code. On an edited comment only commands that were not there before count, so
editing a typo does not approve twice (triagebot's rule). A comment asks for one command at most
(:func:`request`): anyone can paste hundreds of command lines, and each must not cost a reply.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections import Counter
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

    @property
    def line(self) -> str:
        """The command as read: ``/approve 2``."""
        return f"/{self.name} {self.arg}".rstrip()

    @property
    def guess(self) -> str | None:
        """The command an unknown word was meant to be (``/statu`` → ``status``); None for ours and for words
        that are nothing like ours."""
        return None if self.known else _near_miss(self.name)

    @property
    def ours(self) -> bool:
        """One of our commands or a near miss of one. Other bots' commands (/lgtm) and paths (/tmp) are not."""
        return self.known or self.guess is not None


@dataclass(frozen=True)
class Request:
    """What one comment asks of the bot: the one command acted on (None: nothing of ours), and the other
    command lines of ours it holds, which are only named as ignored."""

    command: Parsed | None
    ignored: tuple[Parsed, ...] = ()

    def ignored_lines(self) -> list[tuple[str, int]]:
        """Each distinct ignored line with how often it appears, in the order first seen."""
        return list(Counter(c.line for c in self.ignored).items())


@functools.lru_cache(maxsize=1024)  # a pasted flood repeats one word thousands of times
def _near_miss(name: str) -> str | None:
    close = difflib.get_close_matches(name, KNOWN, n=1, cutoff=0.75)
    return close[0] if close else None


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


def request(body: str, previous: str | None = None, current: str | None = None) -> Request:
    """The command a comment asks for: the first of ours on a line of its own (on an edit, the first that was
    not there before), the rest of ours ignored. ``current`` is the body as GitHub has it when the job runs:
    only commands still there count, so an edit after the event cannot swap them."""
    found = new_commands(body, previous)
    if current is not None:
        still = set(parse(current))
        found = [c for c in found if c in still]
    ours = [c for c in found if c.ours]
    return Request(ours[0] if ours else None, tuple(ours[1:]))


def may_run(name: str, role: str) -> bool:
    """Whether a collaborator role (GitHub's ``role_name``) may run a command."""
    return name not in NEEDS_WRITE or role in ("admin", "maintain", "write")
