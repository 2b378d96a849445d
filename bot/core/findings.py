"""Findings that converge across pushes (issue 17, point 2): a stable id for each finding of a pull request's
review, the lines a review comment may sit on, and what a new head's review makes of the earlier findings.

A finding's id hashes its source, its rule, its file and what ties it to the code, never the line number: a push
that moves the code moves the finding with it. What ties it: for a credential, a fingerprint of the credential
itself (an edit around it on its line is the same credential); else the normalised code of its line (whitespace
collapsed). The window is the line itself, not the lines around it: the lines next to a finding are the ones a push
most often edits, and an id that changed with them would report the same finding twice. Two findings of one rule on
the same code in one file are told apart by their order. A check's finding whose secret's value was changed (the
same statement, its literals masked: :func:`masked`, the line moved a little) has another id, and is matched to the
earlier open one of its rule, file and masked code at most NEAR lines from it (:func:`_checks_near`): the same
finding; another variable's secret there is a new one. A model finding's id also holds the gist of its own text
(:func:`gist`), so two of its findings on identical lines (two ``return None``) stay two whatever the order it
lists them in. A model words a finding anew at times, so its findings are also matched to earlier ones by rule and
location (:func:`_match`): its *place* is its file and the normalised code of its line, which a push that moves
the line keeps.
One earlier open finding and one found now at the same rule and place are the same finding when their words share one
root (:func:`stems`: a model's rewording keeps one, another problem on the line need not; with none the new one is new
and the earlier stays open); several at one place are paired by their words. Failing that, a finding cited a few lines
off (the code there unknown, or the model citing the next line) is the one before when their texts share enough words.
A model finding without a line has only its file for a location, and a file holds unrelated remarks: its words find it
again (the same words), never its file alone. A file renamed since (GitHub's ``previous_filename``) takes its
findings, and their places, with it.

After a push each earlier open finding is *still open* (found again, or a model finding on code nobody
touched since the last reviewed head: a model's silence is no fix), *fixed* (not found again though its file
is still in the pull request), or *gone* (its file is no longer part of the pull request). Pure: no I/O.
Long because matching a finding to the one before is one judgement (ids, places, words, nearness, in that order),
each step reading what the earlier ones took: split, no part could be read without the others.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.patch_lines import diff_lines as diff_lines
from bot.core.patch_lines import hunks as hunks
from bot.core.patch_lines import present as present
from bot.core.patch_lines import renames as renames

OPEN, FIXED, GONE = "open", "fixed", "gone"
CHECK, MODEL = "check", "model"  # a deterministic check's finding, or the model review's
NEAR = 3  # lines a finding may move between heads (a check's: its line edited too) and still be the one before
ALIKE = 0.25  # share of its words a reworded model finding keeps with the one it was (fewer: another finding)
KEEP = 300  # findings kept per pull request (open ones always, up to KEEP_OPEN)
KEEP_OPEN = 1_000  # open findings kept per pull request: a runaway review's record stays bounded
_WORD = re.compile(r"[^\W\d_]{3,}")
_MARK = re.compile(r"[^\W_]")  # a letter or digit: a line without one (blank, a lone ``}``) marks no spot
STEM = 5  # letters of a word that name its root: "floating" and "float", "injections" and "injection" are one
# Words that say nothing of what a finding is about: sharing one is no sign two texts speak of the same problem.
_STOP = frozenset("the and for with this that from are not can any has its into here there when which will was been "
                  "but than then you your all one only may via each such code line value".split())


def normalise(code: str) -> str:
    return " ".join(code.split())


def gist(text: str) -> str:
    """A finding's own words, normalised: what a model keeps when it reports the same finding again (case,
    punctuation, numbers such as the line it cites, and words under three letters left out)."""
    return " ".join(w.rstrip("s") for w in _WORD.findall(text.lower()))


def fingerprint(value: str) -> str:
    """What ties a credential finding to the credential: a hash of its matched value, never the value. It stays in
    the store and in ids; where an id reaches a public text (a tech-debt issue's marker) it is hashed again under a
    key only the App holds (bot/run/merged.py), so a dictionary cannot find a weak password from it. Unkeyed here:
    the core is pure, and every id stored so far was made this way."""
    return hashlib.sha256(b"triage-lead credential\x00" + value.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Seen:
    """A finding as one review reported it, before it is matched to earlier ones."""

    source: str  # CHECK | MODEL
    rule: str
    severity: str  # critical | warning
    text: str
    path: str | None = None
    line: int | None = None
    anchor: str = ""  # what ties it to the code instead of its line's text: a credential's :func:`fingerprint`
    # The ids an earlier review may know it by (set by :func:`identify`): under its file's earlier name, when the file
    # was renamed; and as ids were made before a credential's fingerprint and a model's text were part of them.
    aliases: tuple[str, ...] = ()
    place: str = ""  # its :func:`_place` (set by :func:`identify`); "" when its line tells no spot apart


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
    last_sha: str  # the last head whose review found it, or closed it
    place: str = ""  # its :func:`_place` where it was last found ("" unknown: stored before, or none)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tracked | None:
        """A stored finding; None for one that does not have this shape (never raised over: it is dropped)."""
        # A field with a default was added since some findings were stored: those lack it, or (a record another
        # version wrote) hold null for it: read as its default, never as a reason to drop the finding.
        try:
            found = cls(**{f.name: f.default if data[f.name] is None and f.default is not dataclasses.MISSING
                           else data[f.name] for f in dataclasses.fields(cls)
                           if f.name in data or f.default is dataclasses.MISSING})
        except (KeyError, TypeError):
            return None
        ok = (all(isinstance(getattr(found, k), str) for k in ("id", "source", "rule", "severity", "text", "state",
                                                                "first_sha", "last_sha", "place"))
              and isinstance(found.path, str | None) and isinstance(found.line, int | None))
        return found if ok else None

    def seen(self) -> Seen:
        """This finding as a review reports it (a head judged before, its findings read back)."""
        return Seen(self.source, self.rule, self.severity, self.text, self.path, self.line, place=self.place)


def _key(s: Seen, path: str, code: Mapping[str, Mapping[int, str]], *, before: bool = False) -> tuple[str, ...]:
    """What a finding's id hashes (``before``: as it did before credentials and model texts were part of it)."""
    if s.line is None:
        return ((s.source, s.rule) if s.source == CHECK  # of the whole pull request (no test changed)
                else (s.source, s.rule, path, normalise(s.text)))  # no line to tell two apart: the text
    text = code.get(s.path or "", {}).get(s.line)
    where = (f"credential {s.anchor}" if s.anchor and not before else normalise(text) if text is not None
             else f"line {s.line}" if s.source == MODEL else "")
    return (s.source, s.rule, path, where) + ((gist(s.text),) if s.source == MODEL and not before else ())


_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|`[^`\n]*`')  # a quoted string, one line
_COMMENT = re.compile(r"\s*(?:#|//).*$")  # after the strings are masked: a ``#`` or ``//`` left starts a comment


_KEY_AFTER = re.compile(r"\s*:")  # a literal followed by a colon names a key ("aws_secret_access_key": ...)


def masked(code: str) -> str:
    """A line's code with its string literals emptied (a key's name kept: JSON, a dict) and its trailing comment cut:
    what a check finding's line keeps when only the flagged secret's value (or a note beside it) changed; another
    variable, key or statement differs."""
    def value(m: re.Match[str]) -> str:
        return m.group(0) if _KEY_AFTER.match(code, m.end()) else '""'

    return normalise(_COMMENT.sub("", _LITERAL.sub(value, code)))


def _place(s: Seen, code: Mapping[str, Mapping[int, str]], counted: dict[str, Counter[str]]) -> str:
    """A finding's place in its file, whatever line a push moves it to: a hash (it is stored: the line may hold a
    credential). A model finding's: of its line's normalised code; "" when that code tells no spot apart: its line
    not shown by the diff, a line without a letter or digit, or code the file shows on another line too (a second
    ``return None``), where a finding elsewhere would be taken for this one. ``counted``: each file's codes, counted
    once per review. A check finding's: of its line's :func:`masked` code, so the same statement with a new secret
    in it is found again (:func:`_checks_near`), and another variable's secret is not; "" when its line is not shown."""
    lines = code.get(s.path or "", {})
    text = lines.get(s.line) if s.line is not None else None
    if s.source == CHECK:
        mask = masked(text) if text is not None else ""
        return hashlib.sha256(b"triage-lead masked\x00" + mask.encode()).hexdigest()[:16] if _MARK.search(mask) else ""
    if s.source != MODEL or text is None or not _MARK.search(norm := normalise(text)):
        return ""
    if (s.path or "") not in counted:
        counted[s.path or ""] = Counter(normalise(t) for t in lines.values())
    if counted[s.path or ""][norm] > 1:
        return ""
    return hashlib.sha256(b"triage-lead place\x00" + norm.encode()).hexdigest()[:16]


def identify(seen: Iterable[Seen], code: Mapping[str, Mapping[int, str]],
             renamed: Mapping[str, str] | None = None) -> list[tuple[str, Seen]]:
    """Each finding with its stable id. ``code``: the head's lines by file (:func:`hunks`); a finding on a line it
    does not show is placed by its line number (a model's) or by its file alone (a check of a whole file).
    ``renamed``: earlier name → name now (:func:`renames`); a finding in a renamed file also gets its id under the
    earlier name, by which the earlier review knew it (``aliases``), as does one whose id a stored review made
    the way ids were made before. Each gets its :func:`_place` too."""
    was = {new: old for old, new in (renamed or {}).items()}
    out: list[tuple[str, Seen]] = []
    counts: tuple[dict[tuple[str, ...], int], ...] = ({}, {}, {})  # each kind counted apart: now, renamed, before
    counted: dict[str, Counter[str]] = {}

    def numbered(key: tuple[str, ...], kind: int) -> str:
        n = counts[kind][key] = counts[kind].get(key, 0) + 1
        return hashlib.sha256("\x00".join([*key, str(n)]).encode()).hexdigest()[:16]

    for s in seen:
        key, old, legacy = _key(s, s.path or "", code), was.get(s.path or ""), _key(s, s.path or "", code, before=True)
        aliases = ((numbered(_key(s, old, code), 1),) if old else ()) + ((numbered(legacy, 2),) if legacy != key else ())
        out.append((numbered(key, 0), dataclasses.replace(s, aliases=aliases, place=_place(s, code, counted))))
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


def alike(a: str, b: str) -> float:
    """How much two findings' texts share: the words they have in common over the words of the shorter one."""
    return _share(set(gist(a).split()), set(gist(b).split()))


def stems(text: str) -> set[str]:
    """The roots of a finding's words that say what it is about (:func:`gist`'s words, their first STEM letters,
    words such as "the" left out)."""
    return {w[:STEM] for w in gist(text).split() if w not in _STOP}


def _share(x: set[str], y: set[str]) -> float:
    return len(x & y) / min(len(x), len(y)) if x and y else 0.0


def _by_words(earlier: list[Tracked], now: list[tuple[int, Seen]]) -> list[tuple[int, Tracked]]:
    """Findings now paired with earlier ones by their words, the closest texts first, each at most once; a pair
    sharing fewer than ALIKE of their words is none."""
    was = [(t, set(gist(t.text).split())) for t in earlier]
    pairs = sorted(((_share(w, x), i, t) for i, x in ((i, set(gist(s.text).split())) for i, s in now)
                    for t, w in was), key=lambda p: -p[0])
    out: list[tuple[int, Tracked]] = []
    paired: set[int | str] = set()  # the indexes of findings now, and the ids of earlier ones, paired already
    for score, i, t in pairs:
        if score >= ALIKE and i not in paired and t.id not in paired:
            out.append((i, t))
            paired |= {i, t.id}
    return out


def _by_place(earlier: Mapping[str, Tracked], now: list[tuple[str, Seen]], found: list[Tracked | None],
              taken: set[str]) -> set[str]:
    """Model findings matched by rule and place (``found``, ``taken``: filled in). One earlier open finding and one
    found now at the same rule, file and place are one finding when their texts share one root of a word that says
    something (:func:`stems`): a model rewords a finding ("float" becomes "floating point") but keeps some root of
    what it is about, while a model finding's rule is only its severity, so another problem on the same line (a
    command injection where a SQL injection was) must not take the earlier one's place. With more on either side
    which is which cannot be told from the place, and only their words pair them (ALIKE). Returns the ids of the
    earlier findings a finding at their place shared no root with: another problem found there, on code unchanged,
    is no sign the earlier one was fixed."""
    before: dict[tuple[str, str | None, str], list[Tracked]] = {}
    for t in earlier.values():
        if t.source == MODEL and t.state == OPEN and t.place and t.id not in taken:
            before.setdefault((t.rule, t.path, t.place), []).append(t)
    after: dict[tuple[str, str | None, str], list[tuple[int, Seen]]] = {}
    for i, (_, s) in enumerate(now):
        if found[i] is None and s.source == MODEL and s.place:
            after.setdefault((s.rule, s.path, s.place), []).append((i, s))
    unlike: set[str] = set()
    for spot, here in after.items():
        there = before.get(spot, [])
        pairs = _by_words(there, here)
        if len(there) == 1 and len(here) == 1:
            pairs = [(here[0][0], there[0])] if stems(here[0][1].text) & stems(there[0].text) else []
            unlike |= {there[0].id} - {t.id for _, t in pairs}
        for i, t in pairs:
            found[i] = t
            taken.add(t.id)
    return unlike


def _earlier_model(earlier: Mapping[str, Tracked], s: Seen, taken: set[str]) -> Tracked | None:
    """The earlier model finding ``s`` is by its words near it: same rule and file, at most NEAR lines apart, its
    text sharing at least ALIKE of its words; of several, the closest text, then the closest line. One without a
    line: an earlier one of the file with the same words (:func:`gist`), as its file is no place (see the module)."""
    if s.line is None:
        return next((t for t in earlier.values() if t.source == MODEL and t.id not in taken and t.line is None
                     and (t.rule, t.path) == (s.rule, s.path) and gist(t.text) == gist(s.text)), None)
    near = [(alike(t.text, s.text), -abs(t.line - s.line), t) for t in earlier.values()
            if t.source == MODEL and t.id not in taken and t.rule == s.rule and t.path == s.path
            and t.line is not None and abs(t.line - s.line) <= NEAR]
    best = max(near, key=lambda c: c[:2], default=None)
    return best[2] if best is not None and best[0] >= ALIKE else None


def _checks_near(earlier: Mapping[str, Tracked], now: list[tuple[str, Seen]], found: list[Tracked | None],
                 taken: set[str]) -> None:
    """Check findings matched to earlier open ones of the same rule, file and place (:func:`_place`: the line's code
    with its literals masked) at most NEAR lines away, the closest first, each at most once (``found``, ``taken``:
    filled in). A check's id holds its line's code (or its credential), so a new value for the flagged secret gives
    it another id, while the same statement is still flagged: the same finding, not one fixed and one new. Only the
    same statement: another variable's secret added beside a removed one is new, and the removed one fixed (found by
    review and attack: pairing by line distance alone hid a new credential). One stored before places were kept
    for checks has none, and pairs with nothing (fixed and new, as before)."""
    pairs = sorted((abs(t.line - s.line), i, t.line, t.id) for i, (_, s) in enumerate(now)
                   if found[i] is None and s.source == CHECK and s.line is not None and s.place
                   for t in earlier.values() if t.source == CHECK and t.state == OPEN and t.id not in taken
                   and t.line is not None and (t.rule, t.path, t.place) == (s.rule, s.path, s.place)
                   and abs(t.line - s.line) <= NEAR)
    for _, i, _, tid in pairs:
        if found[i] is None and tid not in taken:
            found[i] = earlier[tid]
            taken.add(tid)


def _match(earlier: Mapping[str, Tracked], now: list[tuple[str, Seen]]) -> tuple[list[Tracked | None], set[str]]:
    """The earlier finding each of ``now`` is, if any: by its id (or its id under its file's earlier name) first,
    for all of them, then a check's finding by rule near it (:func:`_checks_near`), a model finding by rule and
    place, then by its words near it; each earlier finding is matched once. And the earlier ones another finding at
    their place was not (:func:`_by_place`)."""
    found: list[Tracked | None] = [None] * len(now)
    taken: set[str] = set()
    for i, (fid, s) in enumerate(now):
        key = next((k for k in (fid, *s.aliases) if k in earlier and k not in taken), None)
        if key is not None:
            found[i] = earlier[key]
            taken.add(key)
    _checks_near(earlier, now, found, taken)
    unlike = _by_place(earlier, now, found, taken)
    for i, (_, s) in enumerate(now):
        if found[i] is None and s.source == MODEL and (prev := _earlier_model(earlier, s, taken)) is not None:
            found[i] = prev
            taken.add(prev.id)
    return found, unlike


def converge(earlier: Mapping[str, Tracked], now: list[tuple[str, Seen]], sha: str, *, paths: set[str],
             changed: set[str] | None, model_ran: bool, unread: frozenset[str] = frozenset(),
             listed_all: bool = True, renamed: Mapping[str, str] | None = None) -> Round:
    """The findings after the review at ``sha``. ``now``: this review's findings with their ids (:func:`identify`);
    ``paths``: the files the pull request changes at ``sha``; ``changed``: the files changed since the last
    reviewed head (None when GitHub could not say: then every file counts as changed); ``model_ran``: whether a
    model reviewed this head (if not, its earlier findings stay as they were: nobody judged them); ``unread``: files
    the checks could not read at ``sha``, and ``listed_all``: whether GitHub listed every file of the pull request;
    ``renamed``: earlier name → name now, for files renamed since (their findings move with them).
    A finding in a file nobody looked at stays open: "not found" is not "not there". A finding found again is kept
    under the id it has now (its file renamed, a model's finding reworded or moved, or a check's finding whose line
    was edited, the secret's value changed in the same statement: :func:`_checks_near`), with its first head."""
    moves = renamed or {}
    earlier = {fid: dataclasses.replace(t, path=moves[t.path]) if t.path is not None and t.path in moves else t
               for fid, t in earlier.items()}
    now_of: dict[str, Tracked] = {}  # earlier id -> the finding as it is after this head (in the earlier order)
    added: dict[str, Tracked] = {}
    new: list[str] = []
    still_open: list[str] = []
    fixed: list[str] = []
    gone: list[str] = []
    reopened: list[str] = []
    matched, unlike = _match(earlier, now)
    for (fid, s), prev in zip(now, matched, strict=True):
        if prev is None:  # reported for the first time on this pull request
            new.append(fid)
            added[fid] = Tracked(fid, s.source, s.rule, s.severity, s.text, s.path, s.line, OPEN, sha, sha, s.place)
            continue
        # a deterministic finding seen before is never reported again, whatever its state
        fid = fid if fid not in earlier else prev.id
        (still_open if prev.state == OPEN else reopened).append(fid)
        now_of[prev.id] = dataclasses.replace(prev, id=fid, state=OPEN, text=s.text, path=s.path, line=s.line,
                                              last_sha=sha, place=s.place)
    for t in earlier.values():
        if t.state != OPEN or t.id in now_of:
            continue
        if (t.path and (t.path in unread or (not listed_all and t.path not in paths))) or t.id in unlike:
            still_open.append(t.id)  # not read or listed (nobody looked); or its code is there, another problem named
        elif t.source == MODEL and (not model_ran or (t.path and changed is not None and t.path not in changed
                                                      and t.path in paths)):
            still_open.append(t.id)  # unjudged, or on code nobody touched since: the model's silence is no fix
        elif t.path and t.line is not None and t.path not in paths:
            gone.append(t.id)
            now_of[t.id] = dataclasses.replace(t, state=GONE, last_sha=sha)
        else:
            fixed.append(t.id)
            now_of[t.id] = dataclasses.replace(t, state=FIXED, last_sha=sha)
    after = [now_of.get(fid, t) for fid, t in earlier.items()] + list(added.values())
    return Round(sha, {t.id: t for t in after}, new, still_open, fixed, gone, reopened)


def untouched(earlier: Mapping[str, Tracked], code: Mapping[str, Mapping[int, str]]) -> set[str]:
    """Files where an open model finding's line reads at this head as it did when the finding was made (its id,
    made from that line's text, comes out the same): code nobody touched there. For when GitHub's compare cannot
    say what changed (a head not replicated yet, an error): the model's silence on such a line is no fix."""
    out: set[str] = set()
    for t in earlier.values():
        if t.state != OPEN or t.source != MODEL or t.path is None or t.line is None:
            continue
        key = _key(Seen(t.source, t.rule, t.severity, t.text, t.path, t.line), t.path, code)
        if any(hashlib.sha256("\x00".join([*key, str(n)]).encode()).hexdigest()[:16] == t.id for n in range(1, 9)):
            out.add(t.path)
    return out


def lineage(earlier: Mapping[str, Tracked], now: Iterable[Tracked],
            renamed: Mapping[str, str] | None = None) -> list[tuple[str, Seen]]:
    """A head judged before and now the head again (A → B → A): its open findings as a review reports them, each
    with the id B's review kept it under when that is another (B renamed its file: B's review made its id anew under
    the new name, and without the link it would be open at A's path and gone at B's). The same finding by its
    history: same source, rule, first head and text, in the file B's name maps back to (``renamed``), nearest line."""
    moves = renamed or {}
    taken: set[str] = set()
    out: list[tuple[str, Seen]] = []
    for t in now:
        alias = None
        if t.id not in earlier:
            same = [b for b in earlier.values() if b.id not in taken and b.path is not None and moves.get(b.path) == t.path
                    and (b.source, b.rule, b.first_sha, b.text) == (t.source, t.rule, t.first_sha, t.text)]
            alias = min(same, key=lambda b: abs((b.line or 0) - (t.line or 0)), default=None)
        if alias is not None:
            taken.add(alias.id)
        out.append((t.id, dataclasses.replace(t.seen(), aliases=(alias.id,)) if alias else t.seen()))
    return out


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
