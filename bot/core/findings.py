"""Findings that converge across pushes (issue 17, point 2): a stable id for each finding of a pull request's
review, the lines a review comment may sit on, and what a new head's review makes of the earlier findings.

A finding's id hashes its source, its rule, its file and the normalised code of its line (whitespace
collapsed), never the line number: a push that moves the code moves the finding with it. The window is the line
itself, not the lines around it: the lines next to a finding are the ones a push most often edits, and an id
that changed with them would report the same finding twice. Two findings of one rule on the same code in one
file are told apart by their order. A model cites lines loosely and may word a finding anew each time, so its
findings are also matched to earlier ones by rule and location (same file, a few lines apart); a model finding
without a line has no location, and its id holds its text instead (else any two would be one).

After a push each earlier open finding is *still open* (found again, or a model finding on code nobody
touched since the last reviewed head: a model's silence is no fix), *fixed* (not found again though its file
is still in the pull request), or *gone* (its file is no longer part of the pull request). Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

OPEN, FIXED, GONE = "open", "fixed", "gone"
CHECK, MODEL = "check", "model"  # a deterministic check's finding, or the model review's
NEAR = 3  # lines a model finding may move between heads and still be the one reported before
KEEP = 300  # findings kept per pull request (open ones always, up to KEEP_OPEN)
KEEP_OPEN = 1_000  # open findings kept per pull request: a runaway review's record stays bounded
_HUNK = re.compile(r"@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@")


def diff_lines(patch: str) -> Iterator[tuple[int, str, bool]]:
    """(new-file line number, text, added?) of each line on the new side of a patch's hunks, as GitHub returns a
    patch: the lines a review comment may sit on. A file header (``+++ b/x``) can only come before the first hunk:
    inside one, a line starting with ``+++`` is an added line whose text starts with ``++``."""
    line, in_hunk = 0, False
    for raw in patch.splitlines():
        if m := _HUNK.match(raw):
            line, in_hunk = int(m[1]), True
        elif not in_hunk or raw.startswith(("-", "\\")):
            continue
        else:
            yield line, raw[1:], raw.startswith("+")
            line += 1


def hunks(files: Iterable[Mapping[str, Any]]) -> dict[str, dict[int, str]]:
    """Each changed file's new-side hunk lines (number → text), from a pull request's files at one head."""
    return {str(f.get("filename")): {n: text for n, text, _ in diff_lines(str(f.get("patch") or ""))}
            for f in files if f.get("status") != "removed"}


def normalise(code: str) -> str:
    return " ".join(code.split())


@dataclass(frozen=True)
class Seen:
    """A finding as one review reported it, before it is matched to earlier ones."""

    source: str  # CHECK | MODEL
    rule: str
    severity: str  # critical | warning
    text: str
    path: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Tracked:
    """A finding as a pull request keeps it across pushes (stored as :meth:`as_dict`)."""

    id: str
    source: str
    rule: str
    severity: str
    text: str
    path: str | None
    line: int | None
    state: str  # OPEN | FIXED | GONE
    first_sha: str  # the head it was first reported at
    last_sha: str  # the last head whose review found it (or, for a model finding carried unjudged, kept it open)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tracked | None:
        """A stored finding; None for one that does not have this shape (never raised over: it is dropped)."""
        try:
            found = cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})
        except (KeyError, TypeError):
            return None
        ok = (all(isinstance(getattr(found, k), str) for k in ("id", "source", "rule", "severity", "text", "state",
                                                                "first_sha", "last_sha"))
              and isinstance(found.path, str | None) and isinstance(found.line, int | None))
        return found if ok else None


def identify(seen: Iterable[Seen], code: Mapping[str, Mapping[int, str]]) -> list[tuple[str, Seen]]:
    """Each finding with its stable id. ``code``: the head's lines by file (:func:`hunks`); a finding on a line it
    does not show is placed by its line number (a model's) or by its file alone (a check of a whole file)."""
    out: list[tuple[str, Seen]] = []
    counts: dict[tuple[str, ...], int] = {}
    for s in seen:
        text = code.get(s.path or "", {}).get(s.line or 0)
        where = (normalise(text) if text is not None else f"line {s.line}" if s.source == MODEL and s.line
                 else "")
        key = ((s.source, s.rule, s.path or "", where) if s.line is not None
               else (s.source, s.rule) if s.source == CHECK  # of the whole pull request (no test changed)
               else (s.source, s.rule, s.path or "", normalise(s.text)))  # no line to tell two apart: the text
        n = counts[key] = counts.get(key, 0) + 1
        out.append((hashlib.sha256("\x00".join([*key, str(n)]).encode()).hexdigest()[:16], s))
    return out


@dataclass(frozen=True)
class Round:
    """One head's review: every finding the pull request has had, each in its state now, and what changed at this
    head (ids: reported for the first time, found open again, fixed, gone, found again after being closed)."""

    sha: str
    findings: dict[str, Tracked]
    new: list[str] = field(default_factory=list)
    still_open: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)

    def open(self) -> list[Tracked]:
        return [t for t in self.findings.values() if t.state == OPEN]


def _earlier_model(earlier: Mapping[str, Tracked], s: Seen, taken: set[str]) -> Tracked | None:
    """The earlier model finding ``s`` is, by rule and location: same file, at most NEAR lines apart. One without a
    line has no location to match by (any two on a file would be one): only its id, its text, finds it again."""
    if s.line is None:
        return None
    return next((t for t in earlier.values() if t.source == MODEL and t.id not in taken and t.rule == s.rule
                 and t.path == s.path and t.line is not None and abs(t.line - s.line) <= NEAR), None)


def converge(earlier: Mapping[str, Tracked], now: list[tuple[str, Seen]], sha: str, *, paths: set[str],
             changed: set[str] | None, model_ran: bool, unread: frozenset[str] = frozenset(),
             listed_all: bool = True) -> Round:
    """The findings after the review at ``sha``. ``now``: this review's findings with their ids (:func:`identify`);
    ``paths``: the files the pull request changes at ``sha``; ``changed``: the files changed since the last
    reviewed head (None when GitHub could not say: then every file counts as changed); ``model_ran``: whether a
    model reviewed this head (if not, its earlier findings stay as they were: nobody judged them); ``unread``: files
    the checks could not read at ``sha``, and ``listed_all``: whether GitHub listed every file of the pull request.
    A finding in a file nobody looked at stays open: "not found" is not "not there"."""
    out, taken = dict(earlier), set[str]()
    rnd = Round(sha=sha, findings=out)
    for fid, s in now:
        prev = earlier.get(fid) if fid not in taken else None
        if prev is None and s.source == MODEL:
            prev = _earlier_model(earlier, s, taken)
        if prev is None:  # reported for the first time on this pull request
            taken.add(fid)
            rnd.new.append(fid)
            out[fid] = Tracked(fid, s.source, s.rule, s.severity, s.text, s.path, s.line, OPEN, sha, sha)
            continue
        taken.add(prev.id)  # a deterministic finding seen before is never reported again, whatever its state
        (rnd.still_open if prev.state == OPEN else rnd.reopened).append(prev.id)
        out[prev.id] = dataclasses.replace(prev, state=OPEN, text=s.text, line=s.line, last_sha=sha)
    for t in earlier.values():
        if t.state != OPEN or t.id in taken:
            continue
        if t.path and (t.path in unread or (not listed_all and t.path not in paths)):
            rnd.still_open.append(t.id)  # its file was not read at this head, or not listed: nobody looked
        elif t.source == MODEL and (not model_ran or (t.path and changed is not None and t.path not in changed
                                                      and t.path in paths)):
            rnd.still_open.append(t.id)  # unjudged, or on code nobody touched since: the model's silence is no fix
        elif t.path and t.line is not None and t.path not in paths:
            rnd.gone.append(t.id)
            out[t.id] = dataclasses.replace(t, state=GONE, last_sha=sha)
        else:
            rnd.fixed.append(t.id)
            out[t.id] = dataclasses.replace(t, state=FIXED, last_sha=sha)
    return rnd


def kept(findings: Mapping[str, Tracked], most: int = KEEP, most_open: int = KEEP_OPEN) -> dict[str, Tracked]:
    """What a pull request keeps of its findings: every open one (up to ``most_open``, critical first), and the
    latest closed ones up to ``most`` in all. A runaway review (thousands of flagged lines) cannot grow the record
    without end; a finding forgotten would be new if it came back, which only such a review can make happen."""
    opened = sorted((fid for fid, t in findings.items() if t.state == OPEN),
                    key=lambda fid: findings[fid].severity != "critical")[:most_open]
    closed = [fid for fid, t in findings.items() if t.state != OPEN]
    keep = {*opened, *closed[len(closed) - (most - len(opened)):]} if most > len(opened) else set(opened)
    return {fid: t for fid, t in findings.items() if fid in keep}


def load(stored: Mapping[str, Any]) -> dict[str, Tracked]:
    """The stored findings of a pull request, each read back (a malformed one is dropped)."""
    found = (Tracked.from_dict(v) for v in stored.values() if isinstance(v, Mapping))
    return {t.id: t for t in found if t is not None}
