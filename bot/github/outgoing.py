"""What every write to GitHub carries: its human-readable strings defused, and only plain branch names.

The GitHub client passes the JSON body of each POST, PATCH and PUT through :func:`outgoing`, so no path of
the bot (a step's output, a review, a check run, a commit message, an issue it files) can post text that
pings, links out, commands or closes, whichever renderer built it. The bot's own deliberate strings (the team
a repository asks it to mention, the ``Closes #N`` of the pull request it opens) are allowed per call,
explicitly (``keep=``) or for a block of calls (:func:`keeping`). Pure but for that context variable.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Collection, Iterator
from typing import Any

from bot.core.defuse import GITHUB_LIMIT, clip, defuse
from bot.core.markers import split_trailing

# Keys whose strings GitHub renders as Markdown or shows as text: titles, bodies, review and inline comments,
# check-run output (title, summary, text, annotations), commit and dismissal messages.
TEXT = frozenset({"title", "body", "message", "summary", "text", "raw_details", "description"})
LIMIT = GITHUB_LIMIT
_LONG = frozenset({"body", "summary", "text"})
_BRANCH = re.compile(r"[A-Za-z0-9._/-]+")
_KEEP: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("triage_lead_keep", default=frozenset())


@contextlib.contextmanager
def keeping(*strings: str) -> Iterator[None]:
    """Within the block, writes keep these exact strings live (e.g. the configured escalation mention), for
    callers whose writes go through helpers that take no ``keep=``."""
    token = _KEEP.set(_KEEP.get() | frozenset(s for s in strings if s))
    try:
        yield
    finally:
        _KEEP.reset(token)


def outgoing(path: str, data: Any, *, hosts: frozenset[str], keep: Collection[str] = ()) -> Any:
    """``data`` (a write's JSON body for the API ``path``) with every human-readable string defused; raises
    ValueError for a branch the bot would create whose name is not plain (letters, digits, ``._/-``)."""
    allowed = frozenset(keep) | _KEEP.get()
    return _walk(data, "", path=path, hosts=hosts, keep=allowed)


def _walk(value: Any, key: str, *, path: str, hosts: frozenset[str], keep: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, str(k), path=path, hosts=hosts, keep=keep) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, key, path=path, hosts=hosts, keep=keep) for v in value]
    if not isinstance(value, str):
        return value
    if key == "ref" or (key == "head" and path.rstrip("/").endswith("/pulls")):
        _check_branch(value)
    if key not in TEXT:
        return value
    text, mark = split_trailing(value) if key == "body" else (value, "")
    out = defuse(text, hosts=hosts, keep=keep)
    if key in _LONG and len(out) + len(mark) > LIMIT:  # defusing lengthens: cut, and defuse where it was cut
        out = defuse(clip(out, LIMIT - len(mark) - 2_000), hosts=hosts, keep=keep)
    return out + mark


def _check_branch(name: str) -> None:
    if not _BRANCH.fullmatch(name) or ".." in name or name.startswith(("-", "/")):
        raise ValueError(f"refusing to write a branch whose name is not plain: {name[:100]!r}")



