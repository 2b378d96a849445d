"""The Lead's deterministic triage: labels and content weighed together, from ``workflows/triage.yml``.

Used when no model is configured. A label is strong evidence, not a verdict: a ``bug`` label on a
slow-query report still loses to the words "slow query" and "full table scan". Every workflow gathers
evidence: its labels (a label the repository chose, like ``security`` or ``ci``, weighs more than an
issue-type label an issue template sets by itself, like ``bug`` or ``enhancement``; prefixes such as
``kind/`` or ``type:`` and emoji are read through, and a label matched only by its prefix, like ``epic:dashboard``,
weighs like an issue-type label), its keywords in the title (counted twice: the title
says what the issue is about) and in the body's prose, the shape of the body (a stack trace, a task list
of linked issues), a PR's changed paths and a CI failure's check names. A keyword said only inside a longer one
("feature" in "feature request") is part of that phrase. The highest score at or above
:data:`MIN_SCORE` wins; scores within :data:`MARGIN` tie, and a tie goes to the workflow the title speaks
for, then to one whose case does not rest on an issue-type label, then by ``priority``. The Lead asks for a label
instead of guessing when the evidence is thin, when a label says no work is wanted (``duplicate``, ``wontfix``), or
when the evidence that no workflow fits (a ``question`` or ``documentation`` label, a README typo, a title that asks,
a body that asks the maintainers something, a title that asks to change a document, whose other words then count
once, a version's release chore, a body asking for help with one's own setup, a pull request "not for merge") weighs
as much as the best workflow's.

Read like a maintainer reads: hidden text (HTML comments, invisible characters) is stripped, since people
cannot see it; so are an issue template's headings, its checkbox boilerplate ("I have searched the existing
issues") and its environment sections (where "Docker" is how someone installed the tool, not the subject);
a keyword right after a negation ("not a security issue", "doesn't crash") does not count, nor one right
before "tests" ("integration tests" are tests), one called as a function (``alert(1)``), an @mention or a
link's query string; keywords in Chinese, Japanese or Korean are found inside words, which those scripts do
not separate, and a Latin keyword among them stands on its own; code blocks count only through the
shape of what they hold. :func:`bot.core.classify_explain.explain` returns the same classification
with the evidence behind it, from the same scoring (:func:`weigh`), for ``python -m bot triage --explain``.

With a learned model (:mod:`bot.core.classify_learned`, which the Lead passes), each workflow and the evidence that
none fits also get the model's points (at most its ``weight``) as one ``learned`` hit: the rules know the words
someone wrote down, the model the words that usually come with each kind of work; the threshold, ties and the
evidence against then weigh the sum, and ``--explain`` also says what the rules alone would have decided.

Long because the scoring rules are one piece: labels, title, body, shapes and the evidence against weigh together.
The evidence for ``--explain`` is built from :func:`weigh` in :mod:`bot.core.classify_explain`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any, Literal

from bot.core.classify_learned import NONE, Model, features
from bot.core.sanitize import strip_hidden

# Below this the evidence is too thin to pick a workflow and the Lead asks for a label: one hint word in the
# title (2 x 2) or a few in the body are not enough; an issue-type label nothing contradicts (5), a repository's
# own label (10) or a word naming the kind of work (3+) in the title is. On the tuning part 4 to 6 place alike.
MIN_SCORE = 5
# Under a leading label the model may add THIN_POINTS per THIN_WORDS features of the issue's own text it knows
# (words, word pairs; 3/4 point a feature), up to its weight: points, not a share of whatever weight training chose.
THIN_WORDS = 32
THIN_POINTS = 24
# Where no label leads it says nothing until it knows more than MIN_KNOWN features of the issue's own text: a title
# word and a body word make four (the title word as title word and as word, the body word, the pair).
MIN_KNOWN = 4
LABEL_WEIGHT = 10  # a label the repository chose for a kind of work ("security", "ci", "perf", "epic")
TYPE_LABEL_WEIGHT = 5  # an issue-type label that issue templates set by themselves ("bug", "enhancement")
TITLE_FACTOR = 2  # a keyword in the title counts twice
MARGIN = 1  # scores this close are a tie: the workflow the title speaks for wins it, then the one first in priority
# Issue-type labels (GitHub's defaults and their common spellings, as named in the label map): templates apply
# them, so they say which form the reporter filled in more than what the issue is about.
TYPE_LABELS = frozenset({"bug", "defect", "enhancement", "feature", "improvement"})
# Labels that say a maintainer will start no work: no workflow, whatever the content.
CLOSING_LABELS = frozenset({"duplicate", "invalid", "wontfix", "won't fix", "wont fix", "wont-fix", "won't-fix", "spam",
                            "not planned", "not-planned"})
# Evidence that no workflow fits: a question or documentation label, a title about docs, typos or naming.
NONE_LABELS = frozenset({"question", "documentation", "docs"})
NONE_TITLE = {"typo": 4, "typos": 4, "readme": 3, "documentation": 3, "docs": 3, "doc": 3, "example": 3, "how to": 3,
              "question": 5, "rename": 3, "renaming": 3, "guide": 3, "tutorial": 3, "help": 2, "broken link*": 3,
              "not for merge": 5, "do not merge": 5}
# A title that asks to change a document ("Improve guide for Discord notifications", "Update Readme -> new
# roadmap", "docs: ...") is documentation work, and its other words say what the document is about: they count
# once, like the body's, and the title weighs as evidence that no workflow fits. Said so only when the document is
# what is edited or the title's prefix: "Docs build fails on CI" and "README example crashes" report a failure.
# Not "example", which also names code that crashes.
_DOC = r"(?:readme|docs?|docstrings?|documentation|guide|tutorial|getting started|get started|typos?)"
# "Document" opening a title is the verb when what follows is what gets written down ("Document use of pagination",
# "Document how to add an endpoint"); "Document upload fails" names a thing.
_DOCUMENTED = r"(?:the|a|an|how|what|why|when|which|use|usage|all|each|every|our|new|this|these|that|missing)\b"
DOC_TITLE = re.compile(rf"^\W*[\w-]*\b{_DOC}\s*[:\]]|^\W*(?:add|update|improve|write|create|rewrite|clarify|"
                       rf"expand)\W+(?:[\w'-]+\W+){{0,4}}?{_DOC}\b|^\W*document\s+{_DOCUMENTED}")
DOC_WEIGHT = 5
# A document named by its file in a title ("Create SECURITY.md", "Update CONTRIBUTING.md") is read as "docs": the
# file's name says which document, not which work ("security").
_DOC_FILE = re.compile(r"\b[\w-]+\.(?:md|markdown|rst|adoc)\b", re.I)
# A title asking something ("How do I …", "… ?") is a question until the rest of the report says otherwise: it
# weighs like one hint word, so a report whose words name a kind of work still places ("Why does it crash?").
QUESTION_TITLE = re.compile(r"\?\s*$|^\W*how (?:do|can|does|should|to)\b")
QUESTION_WEIGHT = 5
# A title about releasing or tagging a version ("v2.1.0 release checklist", "Tag 0.2.0 for release") is a
# maintainer's routine: its checklist and milestone words are no project to run. It weighs less than a question, so
# a release that broke ("Release workflow fails to publish v1.2.0") still places.
RELEASE_TITLE = re.compile(r"(?=.*\bv?\d+\.\d+(?:\.\d+)*\b)(?=.*\b(?:release|tag)\b)")
RELEASE_WEIGHT = 3
# A body that asks the maintainers something ("Is this project still maintained?", "Where is the connection file?")
# is a question, whatever its words are about: a sentence of at least two words on one line ending in "?". On the
# tuning part 27 of 107 items no workflow fits ask one in their prose, 4 of 191 placeable ones ("500 Error on API
# request ... could you please allow longer queries?"), so it weighs like a hint word, once, and a report whose words
# name a kind of work still places.
BODY_QUESTION_WEIGHT = 4
_QUESTION_MARK = re.compile(r"\?(?=\s|$)")
_SENTENCE_END = re.compile(r"[.?!\n]")
_TWO_WORDS = re.compile(r"[^\W\d_][^ \t]*[ \t]+\S|\S[ \t]+[^\W\d_]")
# Words of someone asking for help with their own setup rather than reporting a defect or asking for work.
NONE_BODY = {"can you help": 3, "please help": 3, "help me": 3, "any tips": 3, "any idea": 2, "any ideas": 2,
             "what am i doing wrong": 4, "support number": 4, "is there a way": 2, "how can i": 2, "how do i": 2,
             "is it possible": 2}
# A maintainer triages on the opening of a report, and every keyword is a scan of the text: a longer body
# (GitHub allows 65,536 characters, a payload from elsewhere any size) is read up to here.
MAX_BODY = 20_000
# GitHub keeps a title to 256 characters; a payload from elsewhere (the triage CLI) may not, and RELEASE_TITLE's
# lookaheads cost time in the square of the title's length (found by attack: 16 s for 32,000 characters).
MAX_TITLE = 1_000


@dataclass(frozen=True)
class Classification:
    workflow: str | None
    subclass: str | None
    reason: str
    confidence: float


@dataclass(frozen=True)
class Hit:
    """One label, keyword, body shape, changed path or failing check that scored for a workflow."""

    kind: Literal["label", "title", "body", "shape", "path", "check", "learned"]
    pattern: str  # as written in triage.yml (a label: the name it matched in the label map)
    matched: str  # what it matched: the phrase, the label as on GitHub, the changed file, the check's name
    weight: int

    @property
    def why(self) -> str:
        if self.kind in ("title", "body"):
            return f'"{self.pattern}"' + (" in the title" if self.kind == "title" else "")
        if self.kind == "label":
            return f"label '{self.matched}'"
        if self.kind == "learned":
            return f"the learned model ({self.matched})"
        return self.pattern if self.kind == "shape" else f"{self.kind} {self.matched}"


# ---- reading the issue like a maintainer ------------------------------------------------------------

_FENCED = re.compile(r"^[ \t]*(```|~~~).*?(?:^[ \t]*\1[ \t]*$|\Z)", re.S | re.M)
# A template's heading: "## Environment", "**Steps**:", "Version:". The text of a "#" heading is the rest of its line
# less trailing blanks and #'s, cut in Python: as a lazy group before "[ \t#]*[ \t]*$" it took 3-4 s on a 20 KB line
# of "# # # ... x" (found by an outside attack, session 32).
_HASH_HEADING = re.compile(r"[ \t]{0,3}#{1,6}[ \t]*(.*)")
_HEADING = re.compile(r"[ \t]{0,3}(?:\*\*([^*\n]{1,80})\*\*:?|([A-Z][\w /]{1,30}):)[ \t]*")
_NOISE_SECTION = re.compile(r"environment|system info|\bversions?\b|platform|operating system|\bos\b|desktop|"
                            r"smartphone|device|browser|checklist|prerequisite|before submitting|code of conduct",
                            re.I)
_CHECKBOX = re.compile(r"^[ \t]*(?:[-*+]|\d+\.)[ \t]+\[[ xX]\][ \t]*(.*)$")
_BOILERPLATE = re.compile(r"^(?:i\b|i'|my\b|this (?:is|issue)|searched|(?:have )?read\b|agree|confirm|"
                          r"(?:the )?(?:issue|bug) (?:is|has|exists))", re.I)
_LINKED = re.compile(r"#\d+|github\.com/[^/\s]+/[^/\s]+/(?:issues|pull)/\d+|\b\w[\w.-]*/\w[\w.-]*#\d+")
_MENTION = re.compile(r"(?<![\w@])@[\w-]+(?:/[\w.-]+)?")
_LINK_QUERY = re.compile(r"(https?://[^\s?#)>\]]*)[?#][^\s)>\]]*")
_EXCEPTION_NAME = re.compile(r"([a-z])(Error|Exception)\b")
_TESTS = re.compile(r"[ \t-]+tests?\b|[ \t]+testing\b")
_NEGATED = re.compile(r"(?:\bnot|\bnever|n't|\bno longer)\s+(?:(?:a|an|the|any|be|been|really|even)\s+)?$")
# What a crash or stack trace looks like, in most languages' words.
_TRACE = re.compile(
    r"Traceback \(most recent call last\)|^[^\S\n]*File \".+\", line \d+|panicked at|"
    r"goroutine \d+ \[|Exception in thread|(?:Exception|Error): |segmentation fault|SIGSEGV|"
    r"core dumped|^[^\S\n]*#\d+\s+0x[0-9a-f]+", re.M | re.I)
# A Java or JavaScript frame, "    at pkg.Fn(File.java:1)": "at" after blanks that reach back to a line start.
_FRAME = re.compile(r"(?<=\s)at [\w$.<>/]+[.(:]", re.I)
# The same texts as "^\s+at ...", "^\s*File", "^\s*#N" and "\b[\w.]*Error: " match, without their cost: each
# "^\s" tried the rest of a run of blank lines from every line start, and "[\w.]*" the rest of "a.a.a." from every
# dot, about 3 s a search on a 20 KB body (found by an outside attack, session 32). "\s*" before "File" or "#N"
# reaches back to a line start exactly when blanks without a newline do from the last line start; any "Error: " has
# a word start before it; and _traced checks the blanks before "at" by hand.


@dataclass(frozen=True)
class Text:
    """An issue as a maintainer reads it: its title, the prose of its body, and the shapes its body holds."""

    title: str
    prose: str
    shapes: frozenset[str]


SHAPES = ("(stack trace)", "(task list of linked issues)")  # written so in triage.yml's text keywords


def read(title: str, body: str) -> Text:
    """The title and the body's prose, lowercased, without hidden text, code blocks and template noise."""
    title, body = (title or "")[:MAX_TITLE], strip_hidden((body or "")[:MAX_BODY])
    prose, tasks = _prose(_FENCED.sub("\n", body))
    traced = _traced(f"{title}\n{body}")
    tracks = sum(_LINKED.search(t) is not None for t in tasks) >= 3  # a tracking issue lists its parts as issues
    shapes = frozenset(name for name, present in zip(SHAPES, (traced, tracks), strict=True) if present)
    return Text(_words(_DOC_FILE.sub(" docs ", strip_hidden(title))), _words(prose), shapes)


def _traced(text: str) -> bool:
    """Whether ``text`` holds a crash or stack trace (_TRACE, or a frame that _FRAME finds and "^\\s+at" would:
    the blanks before its "at" start the text, or hold a newline before their last character)."""
    if _TRACE.search(text):
        return True
    for frame in _FRAME.finditer(text):
        start = end = frame.start()  # the blanks before it, walked back (frames' blanks never overlap: linear)
        while start > 0 and text[start - 1].isspace():
            start -= 1
        if start == 0 or "\n" in text[start:end - 1]:
            return True
    return False


def _words(text: str) -> str:
    """Lowercase, identifiers read as words: DASHBOARD_TOKEN says "token", slow_query_log "slow query", and an
    exception's name its kind (TypeError "type error", NullPointerException "nullpointer exception"). Who is
    mentioned (@acme/security-team) and a link's query string (?token=...) say nothing of the subject."""
    text = _LINK_QUERY.sub(r"\1", _MENTION.sub(" ", text))
    return _EXCEPTION_NAME.sub(r"\1 \2", text).lower().replace("_", " ")


def _heading(line: str) -> str | None:
    """A template heading's text ("## Environment" -> "Environment"), or None when ``line`` is no heading."""
    if hashed := _HASH_HEADING.fullmatch(line):
        return hashed.group(1).rstrip(" \t#")
    other = _HEADING.fullmatch(line)
    return None if other is None else other.group(1) or other.group(2)


def _prose(body: str) -> tuple[str, list[str]]:
    """The body without template headings, checkbox boilerplate and environment sections; its task items."""
    kept: list[str] = []
    tasks: list[str] = []
    noise = False
    for line in body.splitlines():
        if (heading := _heading(line)) is not None:
            noise = bool(_NOISE_SECTION.search(heading))
            continue
        if noise:
            continue
        if box := _CHECKBOX.match(line):
            if _BOILERPLATE.match(box.group(1)):
                continue
            tasks.append(box.group(1))
        kept.append(line)
    return "\n".join(kept), tasks


# Chinese, Japanese and Korean run words together without spaces: a keyword in those scripts is found anywhere.
_CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_CJK = re.compile(f"[{_CJK_RANGES}]")
# A letter or digit of a script that separates words with spaces: a Latin keyword set among Chinese characters
# ("没法build arm64的docker image") still stands on its own. Compiled once and matched one character at a time:
# in each keyword's own pattern this class took 3 ms to compile, a second for the catalog's keywords on the
# first triage of a process.
_WORD = re.compile(f"[^\\W{_CJK_RANGES}]")


@dataclass(frozen=True)
class _Phrase:
    """A keyword as a pattern, and where it must stand: on word boundaries (not for CJK keywords); a trailing
    ``*`` makes it a stem ("migrat*"). A word called as a function is code, not prose: ``alert(1)`` in an XSS
    proof of concept is no production alert."""

    pattern: re.Pattern[str]
    bounded: bool
    stem: bool

    def at(self, text: str, start: int, end: int) -> bool:
        """Whether a match at ``start:end`` stands on its own."""
        if not self.bounded:
            return True
        if (start > 0 and _WORD.match(text, start - 1)) or text.startswith("(", end):
            return False
        return self.stem or not _WORD.match(text, end)


@lru_cache(maxsize=4096)
def _phrase(phrase: str) -> _Phrase:
    return _Phrase(re.compile(re.escape(phrase.rstrip("*").lower())), not _CJK.search(phrase), phrase.endswith("*"))


def _spans(text: str, phrase: str) -> list[tuple[int, int]]:
    """Where ``text`` says ``phrase``, other than right after a negation or right before "tests": integration
    tests, performance tests and CI tests are tests, which say nothing of the kind of work. A match that does not
    stand on its own is skipped by one character, as a pattern with the boundaries in it would try again."""
    p, out, pos = _phrase(phrase), [], 0
    while m := p.pattern.search(text, pos):
        start, end = m.span()
        if not p.at(text, start, end):
            pos = start + 1
            continue
        if not _NEGATED.search(text[max(0, start - 30):start]) and not _TESTS.match(text, end):
            out.append((start, end))
        pos = end if end > start else start + 1
    return out


# What _stuffed counts as one word: a word of a script that separates words with spaces, or one Chinese, Japanese or
# Korean character (those scripts run words together: to "\w+" a run of them, keywords and all, was one word, so
# "漏洞注入崩溃취약점" x10 read as a report; found by an outside attack, session 32).
_UNITS = re.compile(f"[^\\W{_CJK_RANGES}]+|[{_CJK_RANGES}]")
STUFFED_WORDS = 10  # words said inside keywords, repeats counted, before a body reads as a list (no real one does)


def _stuffed(prose: str, phrases: Iterable[str]) -> bool:
    """Whether the prose is mostly the rules' keywords: at least STUFFED_WORDS words said inside keywords (repeats
    counted), and at least twice as many as different words outside them (a filler repeated between the keywords,
    "roadmap and milestone and phase", is one word; a terse report, "Slow query: EXPLAIN ANALYZE shows a sequential
    scan ...", has enough of its own). A line said again counts once: a pasted log of one failure repeated is a
    report (found by review). A list of keywords says what a reader of the rules wants, not what the issue is."""
    prose = "\n".join(dict.fromkeys(prose.splitlines()))
    covered: set[int] = set()
    for phrase in set(phrases):  # a keyword several workflows share is found once
        for start, end in _spans(prose, phrase):
            covered.update(range(start, end))
    inside, outside = 0, set()
    for m in _UNITS.finditer(prose):
        if m.start() in covered:
            inside += 1
        else:
            outside.add(m.group().lower())
    return inside >= STUFFED_WORDS and 2 * len(outside) <= inside


def _said(text: str, phrase: str) -> bool:
    """Whether ``text`` says ``phrase`` at least once (see :func:`_spans`)."""
    return bool(_spans(text, phrase))


def _inside(spans: list[tuple[int, int]], others: Iterable[list[tuple[int, int]]]) -> bool:
    """Whether every one of ``spans`` lies inside a longer span of ``others``: "request" in "feature request"."""
    outer = [o for spans_ in others for o in spans_]
    return all(any(a <= s and e <= b and (a, b) != (s, e) for a, b in outer) for s, e in spans)


def _title_factor(text: Text) -> int:
    """How much a workflow's keyword in the title counts: twice, unless the title names a document to change."""
    return 1 if DOC_TITLE.search(text.title) else TITLE_FACTOR


def _path_hit(path: str, pattern: str) -> bool:
    path, name = path.lower(), PurePosixPath(path).name.lower()
    pattern = pattern.lower()
    if pattern.endswith("/"):
        return path.startswith(pattern) or f"/{pattern}" in path
    if "*" in pattern:
        return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(name, pattern)
    return path == pattern or name == pattern or path.endswith(f"/{pattern}")


def _label_parts(label: str) -> tuple[str, list[str], list[str]]:
    """A label's whole name, the names its value goes by, and those of its category prefix (if it has one)."""
    name = re.sub(r":[a-z0-9_+-]+:", " ", label.lower().replace("\u2019", "'"))  # :wrench: codes; won’t is won't
    name = re.sub(r"\s+", " ", re.sub(r"[^\w\s/:+.&'-]|_", " ", name)).strip(" .-")
    parts = [p.strip(" .-") for p in re.split(r"[/:]", name)]  # "ci/cd" itself is tried first, as the whole
    prefix = parts[:1] if len(parts) > 1 and parts[-1] else []
    value = parts[len(prefix):]

    def names(ps: list[str]) -> list[str]:
        return [*ps, *(w for p in ps for w in re.split(r"[\s.&-]+", p))]

    return name, names(value), names(prefix)


def label_names(label: str) -> list[str]:
    """The names a label goes by, most specific first: 'Type: Bug 🐛' → 'type: bug', 'bug', then its prefix 'type'."""
    name, value, prefix = _label_parts(label)
    return list(dict.fromkeys(n for n in (name, *value, *prefix) if n))


def _label_hits(labels: Iterable[str], label_map: Mapping[str, str]) -> dict[str, list[Hit]]:
    """Each mapped label as a hit for its workflow, the first of its names the map knows. A prefix names a
    category ("kind/", "area:"), so matched by its prefix alone a label weighs like an issue-type label: an
    issue labelled epic:dashboard is one part of that epic, not the epic itself."""
    out: dict[str, list[Hit]] = {}
    for label in labels:
        if known := next((n for n in label_names(label) if n in label_map), None):
            _, value, prefix = _label_parts(label)
            by_prefix = known in prefix and known not in value
            weight = TYPE_LABEL_WEIGHT if known in TYPE_LABELS or by_prefix else LABEL_WEIGHT
            out.setdefault(label_map[known], []).append(Hit("label", known, label, weight))
    return out


def _hits(spec: Mapping[str, Any], text: Text, paths: list[str], checks: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    words = {str(p): int(w) for p, w in (spec.get("text") or {}).items()}
    # Where each keyword is said in the title: a keyword said only inside a longer one that weighs as much
    # ("feature" in "feature request") is part of that phrase, not evidence of its own; a longer one that weighs
    # less ("mcp server" beside "mcp") is written as a bonus on top.
    in_title = {p: _spans(text.title, p) for p in words if p not in SHAPES}
    factor = _title_factor(text)
    for phrase, weight in words.items():
        if phrase in SHAPES:
            hits += [Hit("shape", phrase, phrase, weight)] if phrase in text.shapes else []
        elif in_title[phrase]:
            if not _inside(in_title[phrase], (v for k, v in in_title.items() if k != phrase and words[k] >= weight)):
                hits.append(Hit("title", phrase, phrase, weight * factor))
        elif _said(text.prose, phrase):
            hits.append(Hit("body", phrase, phrase, weight))
    for pattern, weight in (spec.get("paths") or {}).items():
        if path := next((p for p in paths if _path_hit(p, str(pattern))), None):
            hits.append(Hit("path", str(pattern), path, int(weight)))
    for part, weight in (spec.get("checks") or {}).items():
        if check := next((c for c in checks if str(part).lower() in c.lower()), None):
            hits.append(Hit("check", str(part), check, int(weight)))
    return hits


# ---- weighing ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One workflow's evidence and score."""

    workflow: str
    hits: tuple[Hit, ...]

    @property
    def score(self) -> int:
        return sum(h.weight for h in self.hits)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(h.matched for h in self.hits if h.kind == "label")

    @property
    def in_title(self) -> bool:
        return any(h.kind == "title" for h in self.hits)

    @property
    def by_form(self) -> bool:
        """Whether an issue-type label (the form the reporter filled in, "bug") is part of the case."""
        return any(h.kind == "label" and h.pattern in TYPE_LABELS for h in self.hits)


@dataclass(frozen=True)
class Weighed:
    """Every workflow's case, best first (ties by priority), and the evidence that none fits."""

    cases: tuple[Case, ...]
    against: tuple[Hit, ...]  # evidence for asking: a question/docs label, a title about docs or naming
    closing: str | None  # a label saying no work is wanted ("duplicate"), as on GitHub
    text: Text
    stuffed: bool = False  # the body is mostly the rules' keywords (_stuffed): the model gets no share of it

    @property
    def top(self) -> Case | None:
        return self.cases[0] if self.cases else None

    @property
    def second(self) -> int:
        return self.cases[1].score if len(self.cases) > 1 else 0

    @property
    def against_score(self) -> int:
        return sum(h.weight for h in self.against)


def weigh(triage: Mapping[str, Any], *, title: str, body: str, labels: Iterable[str] = (),
          paths: Iterable[str] = (), checks: Iterable[str] = (), learned: Model | None = None) -> Weighed:
    """Every workflow's evidence for an item, the way :func:`classify` and ``classify_explain.explain`` both read it; with a
    ``learned`` model, its points too (:func:`with_learned`)."""
    labels, paths, checks = [str(lab) for lab in labels], list(paths), list(checks)
    rank = {str(w): i for i, w in enumerate(triage.get("priority") or [])}
    text = read(title, body)
    label_map = {str(k).lower(): str(v) for k, v in (triage.get("labels") or {}).items()}
    by_label = _label_hits(labels, label_map)
    keywords = triage.get("keywords") or {}
    names = set(map(str, keywords)) | set(by_label) | set(rank)
    cases = [Case(w, (*by_label.get(w, ()), *_hits(keywords.get(w) or {}, text, paths, checks))) for w in names]
    stuffed = _stuffed(text.prose, (h.pattern for c in cases for h in c.hits if h.kind == "body"))
    if stuffed:  # a list of the rules' keywords is no report: neither the rules nor the model read the body
        cases = [Case(c.workflow, tuple(h for h in c.hits if h.kind != "body")) for c in cases]
    closing = next((lab for lab in labels if CLOSING_LABELS & set(label_names(lab))), None)
    weighed = Weighed(_ordered(cases, rank), tuple(_against(labels, text)), closing, text, stuffed)
    return weighed if learned is None else with_learned(triage, weighed, learned, labels)


def with_learned(triage: Mapping[str, Any], w: Weighed, learned: Model, labels: Iterable[str]) -> Weighed:
    """``w`` with the learned model's points added: to each workflow it knows, and for "no workflow fits" to the
    evidence against, as one ``learned`` hit each (none when it adds nothing), so the threshold, ties and the
    evidence against weigh the sum. Workflows the catalog lacks get nothing."""
    if model_barred(w):  # it would add nothing (with_points): not worth its posterior, n-grams and all
        return w
    feats = features(w.text.title, w.text.prose, (n for lab in labels for n in label_names(str(lab))), w.text.shapes)
    grams = learned.grams(w.text.title, w.text.prose)
    return with_points(triage, w, learned.points(feats, content_share(w, learned, feats), grams))


def content_share(w: Weighed, learned: Model, feats: Iterable[str]) -> float:
    """The share of its weight the model may use, by how many features of the issue's own text it knows (labels'
    names aside, :meth:`Model.words_known`).

    Where a label leads the rules' case (an issue-type label: a work label keeps the model out, :func:`model_barred`),
    at most THIN_POINTS per THIN_WORDS known features (3/4 point a feature), up to its weight: points, whatever weight
    the training chose. With few words its posterior is mostly its prior, and "no workflow fits" is the likeliest
    class a priori: on "Something to do" labelled ``bug`` the mixed model said none fits at 0.29, the label's evidence
    being 5 points; that is no evidence against a label. As a share of the weight (stop 30) it held at weight 24, but
    a retraining that chose weight 48 (round 16) doubled the model's say on thin text and it overturned the label
    again; counted in points it does not move with the weight (at weight 24 both are the same).

    Where no label leads, all of it, but nothing on an issue of at most MIN_KNOWN known features: the character
    n-grams of one word, normed per item, speak as surely as a whole report and count its repeats ("Hello" with
    "token" started security-fix, with "oauth" three times integration-setup where once it asked; found by an
    outside attack, session 31). Out of fold on the 3,772 tuning items at the trained settings: 3,275 / 3,259 →
    3,275 / 3,261 right with labels kept / removed, and the training chooses the same settings
    (benchmarks/triage/README.md, round 17).

    Nothing on a body that is mostly the rules' own keywords (:func:`_stuffed`): a list is no report."""
    if w.stuffed:
        return 0.0
    known = learned.words_known(feats)
    if not label_led(w):
        return 1.0 if known > MIN_KNOWN else 0.0
    return min(1.0, THIN_POINTS * known / THIN_WORDS / learned.weight) if learned.weight else 1.0


def with_points(triage: Mapping[str, Any], w: Weighed, points: Mapping[str, tuple[int, float]]) -> Weighed:
    """``w`` with a learned model's points (per class: points, probability) added; see :func:`with_learned`.

    Unless a label that names a kind of work leads (:func:`model_barred`): a repository's own label (``api``,
    ``security``, ``performance``) is the strongest evidence the Lead has, and the rules may overturn it on content
    they can name, but not the model, which only knows which words usually come with each kind of work ("Fix the
    crash" labelled ``api`` stays with its label). An issue-type label (``bug``, ``enhancement``, ``kind/…``) is
    often set by a template: there the model's words weigh against it like any other evidence (a ``bug`` on a
    README typo). Out of fold on the 614 tuning items (benchmarks/triage/cv_variants.py), against keeping the model
    out under every label: 534 → 540 right with labels kept, 224 → 228 of the 271 no rule was tuned on; in under
    every label it would move "Fix the crash" labelled ``api`` off its label for 3 items more."""
    if model_barred(w):
        return w

    def hit(cls: str) -> tuple[Hit, ...]:
        add, p = points.get(cls, (0, 0.0))
        return (Hit("learned", "learned model", f"p={p:.2f}", add),) if add > 0 else ()

    rank = {str(x): i for i, x in enumerate(triage.get("priority") or [])}
    cases = [Case(c.workflow, (*c.hits, *hit(c.workflow))) for c in w.cases]
    return replace(w, cases=_ordered(cases, rank), against=(*w.against, *hit(NONE)))  # the rest as it was


def label_led(w: Weighed) -> bool:
    """Whether a label the item carries is part of the rules' leading case."""
    return w.top is not None and bool(w.top.labels)


def names_work(w: Weighed) -> bool:
    """Whether any label the item carries names a kind of work (``api``, ``security/critical``, ``perf: regression``),
    in any workflow's case, leading or not: told by what the label is, never by its weight (a label matched by its
    prefix weighs as little as ``bug`` but still names the work)."""
    return any(h.kind == "label" and h.pattern not in TYPE_LABELS for c in w.cases for h in c.hits)


def _documentation_hits(w: Weighed) -> list[Hit]:
    """The evidence against that a documentation label gave (``question`` is a template's, like ``bug``)."""
    return [h for h in w.against if h.kind == "label" and h.pattern != "question"]


def says_documentation(w: Weighed) -> bool:
    """Whether a documentation label (``documentation``, ``docs``) is among the evidence that no workflow fits: a
    person said what the work is, as a work label does."""
    return bool(_documentation_hits(w))


def documentation_label(w: Weighed) -> str | None:
    """The label, as on GitHub, whose whole name says the work is documentation (``documentation``, ``docs``,
    ``Type: Docs 📝``, ``kind/documentation``): the Lead asks whatever keywords say (an outside attack started work
    under the docs template with a keyword list). A name that only holds the word (``skip-docs``, ``no-docs-needed``,
    ``status: needs docs``) stays weighed evidence."""
    whole = (["docs"], ["doc"], ["documentation"])
    return next((h.matched for h in _documentation_hits(w) if _label_parts(h.matched)[1][:1] in whole), None)


def type_led(w: Weighed) -> bool:
    """Whether a label leads the rules' case and every label the item carries is an issue-type label (``bug``,
    ``enhancement``, ``kind/bug``): the form a template filled in, not a person naming the kind of work."""
    return label_led(w) and not names_work(w)


def model_barred(w: Weighed) -> bool:
    """Whether the learned model stays out: a label naming a kind of work is on the item and a label leads, or a
    documentation label says none fits (an outsider's word list must not overturn it either; found by attack)."""
    return (label_led(w) and names_work(w)) or says_documentation(w)


def _ordered(cases: list[Case], rank: Mapping[str, int]) -> tuple[Case, ...]:
    """Best first. Scores within MARGIN of the best tie: the title's workflow first, then one whose case does not
    rest on an issue-type label (a template's "bug" is the form, the content the subject), then priority."""
    cases = sorted(cases, key=lambda c: (-c.score, rank.get(c.workflow, len(rank)), c.workflow))
    best = cases[0].score if cases else 0
    tied = [c for c in cases if c.score >= MIN_SCORE and best - c.score <= MARGIN]  # too thin to win a tie
    tied.sort(key=lambda c: (not c.in_title, c.by_form, rank.get(c.workflow, len(rank)), c.workflow))
    return (*tied, *cases[len(tied):])


def _against(labels: list[str], text: Text) -> list[Hit]:
    # A docs label says the work is documentation, which no workflow does: it outweighs any one workflow's
    # label; "question" is often set by a template, so it counts as an issue-type label.
    hits = [Hit("label", known, lab, TYPE_LABEL_WEIGHT if known == "question" else 2 * LABEL_WEIGHT) for lab in labels
            for known in [next((n for n in label_names(lab) if n in NONE_LABELS), None)] if known]
    hits += [Hit("title", w, w, weight * TITLE_FACTOR) for w, weight in NONE_TITLE.items() if _said(text.title, w)]
    hits += [Hit("body", w, w, weight) for w, weight in NONE_BODY.items() if _said(text.prose, w)]
    if question := body_question(text.prose):
        hits.append(Hit("shape", "(question in the body)", question[:80], BODY_QUESTION_WEIGHT))
    if QUESTION_TITLE.search(text.title):
        hits.append(Hit("shape", "(question)", text.title, QUESTION_WEIGHT * TITLE_FACTOR))
    if DOC_TITLE.search(text.title):
        hits.append(Hit("shape", "(documentation change)", text.title, DOC_WEIGHT * TITLE_FACTOR))
    if RELEASE_TITLE.search(text.title):
        hits.append(Hit("shape", "(release chore)", text.title, RELEASE_WEIGHT * TITLE_FACTOR))
    return hits


def body_question(prose: str) -> str | None:
    """The first sentence of ``prose`` that asks something: words on one line ending in "?" (not a lone "?", not a
    link's query string). Each "?" is read back only to the sentence's start, so a hostile body costs linear time."""
    for mark in _QUESTION_MARK.finditer(prose):
        start = max((m.end() for m in _SENTENCE_END.finditer(prose, max(0, mark.start() - 300), mark.start())),
                    default=max(0, mark.start() - 300))
        if _TWO_WORDS.search(sentence := prose[start:mark.start() + 1].strip()):
            return sentence
    return None


def _confidence(top: int, second: int) -> float:
    """0.5 on a tie, rising with the lead over the runner-up and with the strength of the evidence; at most 0.9."""
    lead = max(0, top - second) / top  # a tie the margin rule broke is still a tie
    return round(min(0.9, 0.5 + 0.4 * lead * min(1.0, top / (2 * MIN_SCORE))), 2)


def weighed_text(w: Weighed) -> Text:
    """The text the rules weighed: without the body where it read as a keyword list, which then picks no subclass
    either (found by attack, session 32)."""
    return replace(w.text, prose="") if w.stuffed else w.text


def _subclass(triage: Mapping[str, Any], workflow: str, text: Text, paths: list[str], checks: list[str]) -> str | None:
    per = (triage.get("subclass_keywords") or {}).get(workflow) or {}
    scored = [(sum(h.weight for h in _hits(spec, text, paths, checks)), str(name)) for name, spec in per.items()]
    best = max(scored, default=(0, None), key=lambda s: s[0])
    return best[1] if best[0] > 0 else None


def subclass_of(triage: Mapping[str, Any], workflow: str, *, title: str, body: str, paths: Iterable[str] = (),
                checks: Iterable[str] = ()) -> str | None:
    """The spec's sub-classification of an item placed in ``workflow`` by other means (a person's label)."""
    return _subclass(triage, workflow, read(title, body), list(paths), list(checks))


def _asks(w: Weighed) -> str | None:
    """Why the Lead asks for a label instead of placing the item, or None when it places it."""
    top = w.top
    if w.closing:
        return f"label '{w.closing}' says no work is wanted"
    if (docs := documentation_label(w)) is not None:  # a person (or the docs template) said what the work is
        return f"label '{docs}' says this is documentation work, which no workflow does"
    if top is None or top.score < MIN_SCORE:
        closest = f"; the closest was {top.workflow} (score {top.score})" if top and top.score else ""
        return f"no label or keyword clearly matches a workflow{closest}"
    if w.against_score >= top.score:
        weighs = "outweighs" if w.against_score > top.score else "weighs as much as"
        return (f"the evidence that no workflow fits ({', '.join(h.why for h in w.against)}: "
                f"{w.against_score}) {weighs} {top.workflow}'s {top.score}")
    return None


def classify(triage: Mapping[str, Any], *, title: str, body: str, labels: Iterable[str] = (),
             paths: Iterable[str] = (), checks: Iterable[str] = (), learned: Model | None = None) -> Classification:
    """The workflow for an issue, PR or CI failure, with its evidence; workflow None when nothing is clear."""
    paths, checks = list(paths), list(checks)
    w = weigh(triage, title=title, body=body, labels=labels, paths=paths, checks=checks, learned=learned)
    return _decide(triage, w, paths, checks)


def placed(w: Weighed) -> str | None:
    """The workflow the evidence places the item in, or None when the Lead asks (the decision without its words)."""
    return None if _asks(w) is not None or w.top is None else w.top.workflow


def _decide(triage: Mapping[str, Any], w: Weighed, paths: list[str], checks: list[str]) -> Classification:
    top = w.top
    if (asked := _asks(w)) is not None or top is None:
        return Classification(None, None, asked or "no workflow is configured", 0.1)
    reason = f"{', '.join(h.why for h in top.hits[:8])} point to {top.workflow} (score {top.score}"
    reason += f"; next best {w.cases[1].workflow}, {w.second})" if w.second else ")"
    return Classification(top.workflow, _subclass(triage, top.workflow, weighed_text(w), paths, checks), reason,
                          _confidence(top.score, w.second))

