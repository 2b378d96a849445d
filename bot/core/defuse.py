"""Markdown made inert before it is posted: nothing the bot posts can ping, link out, command, close or break out.

Anyone can write text the bot quotes (an issue, a file name, a file's content, a CI log, a model talked into
anything). GitHub renders what the bot posts and other bots read it, so such text must not notify a person or
team, carry a link or an image to another host (GitHub's image proxy fetches an image as the page renders: a
leak without a click), say ``/approve`` on a line of its own, close an issue, forge the bot's hidden marker or
escape from the code block it was put in. :func:`defuse` is the one function that sees to it; the GitHub client
applies it to every write, and the agent runtime to model prose. Over-defusing is always safe (a zero-width
space in a decorator, an e-mail address in a code span); missing a case is the bug.

Only closed fenced code blocks that GitHub certainly renders as code are left as they are (GitHub notifies and
links nobody from code); everything else is prose. A fence inside a list, a quote or raw HTML, an unclosed one,
indented code and inline code spans are prose. Pure: no I/O.

One module because the block finder, the link parser and the pattern passes are one CommonMark reading of one
text, checked against each other (:func:`_pass` runs again when defusing changed which blocks are code), and
tests count the link parser's reads through this module's ``_target``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection
from typing import Literal

from bot.core.markers import neutralise

ZWSP = "\u200b"  # invisible, yet it breaks every pattern below (no renderer or bot takes it for a space)
IMAGE_REMOVED = "(image removed)"
_WINDOW = 2_000  # how far the link parser looks for a title's end or a link text's opening bracket
_MANY = 1_000  # inline links read one by one in a text; past that, none is kept
# Bare URLs judged one by one in a text, each with its host's 300 characters: this many schemes (scheme://) and as
# many www. autolinks; past that, none is kept (a post of 64 KB of "a\\:\\/\\/" took 1-3 s to judge, found by an
# outside attack, session 33).
_MANY_BARE = 200
# Bidirectional overrides and isolates reorder what a reader sees ("Trojan Source"): shown by name, never applied,
# so a file name, a title or a quoted line cannot read as something else (and a diff's hidden one stays visible).
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def defuse(text: str, *, hosts: frozenset[str], keep: Collection[str] = (), code: bool = True) -> str:
    """``text`` safe to post: mentions, outside links and images, command lines, closing keywords and markers
    defused. ``hosts``: lowercased hosts whose links stay live (an exact match: a subdomain is another host).
    ``keep``: the bot's own deliberate strings, exact (an ``@org/team`` it was configured to mention, a
    ``Closes #N`` line). ``code=False``: fences are not trusted either (model output writes its own).
    Idempotent: each pass only adds defusing, and the passes run until one changes nothing."""
    kept = frozenset(k.strip() for k in keep)
    text = _BIDI.sub(lambda m: f"[U+{ord(m.group()):04X}]", text)
    for _ in range(8):
        out = _pass(text, hosts, kept, code)
        if out == text:
            break
        text = out
    return text


GITHUB_LIMIT = 65_536  # characters GitHub takes in a comment, an issue body, a check run's summary or text


def clip(text: str, limit: int = GITHUB_LIMIT - 200) -> str:
    """``text`` cut to ``limit`` characters, saying so at the end: the one cut every post goes through."""
    if len(text) <= limit:
        return text
    note = "\n\n_…cut: this post was longer than GitHub allows._"
    return text[: max(0, limit - len(note))] + note


def code_span(text: str, limit: int = 300) -> str:
    """``text`` as inline code no character of it can end: one line (a newline would end the span's paragraph
    where a list item begins), no control or invisible characters, cut to ``limit``, between backtick runs
    longer than any inside (padded with spaces where it starts or ends with a backtick or a space)."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(flat) > limit:
        flat = flat[: max(0, limit - 1)] + "…"
    if not flat.strip():
        return "` `"
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat[0] in "` " or flat[-1] in "` " else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def block(text: str, lang: str = "") -> str:
    """``text`` as a fenced code block no line of it can close: a fence longer than any backtick run inside."""
    body = re.sub(r"\r\n?", "\n", text).rstrip("\n")
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", body)), default=0) + 1)
    return f"{fence}{re.sub(r'[^A-Za-z0-9_+.#-]', '', lang)[:30]}\n{body}\n{fence}"


# ---- one pass --------------------------------------------------------------------------------------

def _pass(text: str, hosts: frozenset[str], keep: frozenset[str], code: bool) -> str:
    """Prose defused, certain code blocks left but for markers and command lines. If defusing the prose
    changed which blocks are code (an HTML block that swallowed a fence is escaped, say), nothing is trusted."""
    spans = _code_blocks(text) if code else []
    pieces: list[tuple[bool, str]] = []
    last = 0
    for start, end in [*spans, (len(text), len(text))]:
        pieces.append((False, _prose(text[last:start], hosts, keep)))
        if start < end:
            pieces.append((True, _everywhere(text[start:end])))
        last = end
    out = "".join(piece for _, piece in pieces)
    # Unchanged text has the blocks already found (most texts: the last pass of every defuse), so it is not read again.
    if code and (spans if out == text else _code_blocks(out)) != _spans_of(pieces):
        return _pass(text, hosts, keep, code=False)
    return out


def _spans_of(pieces: list[tuple[bool, str]]) -> list[tuple[int, int]]:
    spans, at = [], 0
    for is_code, piece in pieces:
        if is_code:
            spans.append((at, at + len(piece)))
        at += len(piece)
    return spans


def _prose(text: str, hosts: frozenset[str], keep: frozenset[str]) -> str:
    text = _entities(text)
    text = _links(text, hosts)
    text = _ANGLE.sub(lambda m: _angle(m, hosts), text)
    text = _bare_schemes(text, hosts)
    text = _www_links(text, hosts)
    if "]:" in text:  # every definition has one (its label's end): most texts skip the pattern's line-by-line scan
        text = _DEFINITION.sub(lambda m: _definition(m, hosts), text)
    text = _MENTION.sub(lambda m: m.group() if _mention_kept(m, keep) else "@" + ZWSP, text)
    text = _CLOSING.sub(lambda m: m.group() if keep and _line_of(m).strip() in keep else m.group()[0] + ZWSP + m.group()[1:],
                        text)
    return _everywhere(text)


def _everywhere(text: str) -> str:
    """What is defused in code too: other bots match ``^/cmd`` on the raw text, and markers are the bot's own."""
    return _commands(neutralise(text))


# ---- blocks: the closed fenced code blocks GitHub certainly renders as code ----------------------------

_OPEN = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)")
_CLOSE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")
_CONTAINER = re.compile(r" {0,3}(?:>|(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$))")
# HTML blocks (CommonMark types 1-5) and the line that ends each; any other tag starting a line is taken for
# types 6 and 7, which end at a blank line (taken alike even where 7 cannot start: more prose is safe).
_HTML = ((re.compile(r" {0,3}<(?:pre|script|style|textarea)(?=[\s>]|$)", re.I),
          re.compile(r"</(?:pre|script|style|textarea)>", re.I)),
         (re.compile(r" {0,3}<!--"), re.compile(r"-->")), (re.compile(r" {0,3}<\?"), re.compile(r"\?>")),
         (re.compile(r" {0,3}<!\[CDATA\["), re.compile(r"\]\]>")), (re.compile(r" {0,3}<![A-Za-z]"), re.compile(">")),
         (re.compile(r" {0,3}</?[A-Za-z]"), None))


# Where an HTML block ends: False when not in one, None at a blank line, else at the pattern's match.
_HtmlEnd = re.Pattern[str] | None | Literal[False]


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def _lines(text: str) -> list[str]:
    """``text`` cut where CommonMark ends lines (\\n, \\r\\n or \\r), each with its ending."""
    return _LINE.findall(text)


def _code_blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) of each closed fenced code block at the document's top level: an opening fence of 0-3
    spaces (none inside a list or a quote, where the item's indentation decides) outside raw HTML, closed by a
    line of the same character at least as long. After an unclosed fence GitHub renders the rest as code; here
    it is all prose."""
    if "```" not in text and "~~~" not in text:  # no fence can open (_OPEN): spare the line-by-line read
        return []
    lines = _lines(text)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    spans: list[tuple[int, int]] = []
    html_end: _HtmlEnd = False  # False: not in HTML; None: HTML until a blank line
    container, after_blank, i = False, True, 0
    while i < len(lines):
        line = lines[i].rstrip("\r\n")
        blank = not line.strip(" \t")
        if html_end is not False:
            if (blank if html_end is None else html_end.search(line)):
                html_end = False
            after_blank, i = blank, i + 1
            continue
        m = _OPEN.fullmatch(line)
        if m and not (m.group(2)[0] == "`" and "`" in m.group(3)) and not (container and m.group(1)):
            end = _closing(lines, i, m.group(2))
            if end is None:
                break
            spans.append((starts[i], starts[end + 1]))
            container, after_blank, i = False, False, end + 1
            continue
        html_end = _html_start(line)
        if html_end is False and _CONTAINER.match(line):
            container = True
        elif not blank and after_blank and line[:1] not in (" ", "\t"):
            container = False
        after_blank, i = blank, i + 1
    return spans


def _closing(lines: list[str], i: int, fence: str) -> int | None:
    for j in range(i + 1, len(lines)):
        m = _CLOSE.fullmatch(lines[j].rstrip("\r\n"))
        if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
            return j
    return None


def _html_start(line: str) -> _HtmlEnd:
    if "<" not in line[:4]:  # every start in _HTML is a '<' after at most 3 spaces: most lines are not one
        return False
    for start, end in _HTML:
        if m := start.match(line):
            if end is not None and end.search(line, m.end()):
                return False  # it ends on its own line
            return end
    return False


# ---- entities: what renders as '@', ':' or a letter is written as one ----------------------------------

_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def _entities(text: str) -> str:
    """``&#64;acme``, ``https&#58;//`` and ``Clo&#115;es`` render as a mention, a link, a keyword: shown as
    written instead. Entities for ``& < > " '``, spaces and non-ASCII text stay."""
    def one(m: re.Match[str]) -> str:
        c = html.unescape(m.group())
        return "&amp;" + m.group()[1:] if len(c) == 1 and c.isascii() and c not in "&<>\"' \t\n\r" else m.group()
    return _ENTITY.sub(one, text)


def _unescape(text: str) -> str:
    """A link destination as CommonMark reads it: backslash escapes and entity references resolved."""
    if "\\" in text:
        text = _ESCAPE.sub(r"\1", text)
    return _ENTITY.sub(lambda m: html.unescape(m.group()), text) if "&" in text else text


_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


# ---- links -------------------------------------------------------------------------------------------

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_NO_BREAKS = dict.fromkeys(map(ord, "\t\n\r"))  # str.translate's table: dropped
_BELOW_SPACE = "".join(map(chr, range(0x21)))
_TWO_SLASHES = frozenset({"//", "/\\", "\\/", "\\\\"})


def _allowed(dest: str, hosts: frozenset[str]) -> bool:
    """Whether a link to ``dest`` stays on GitHub or an allowed host: relative links and anchors do; any scheme
    but http(s) does not. Read as a browser would: tabs and newlines dropped, backslashes taken for slashes."""
    url = _unescape(dest).translate(_NO_BREAKS).strip(_BELOW_SPACE)
    if m := _SCHEME.match(url):
        if m.group(1).lower() not in ("http", "https"):
            return False
        rest = url[m.end():]
    elif url[:2] in _TWO_SLASHES:
        rest = url  # //host/path: another host, on the page's scheme
    else:
        return True
    authority = re.split(r"[/\\?#]", rest.lstrip("/\\"), maxsplit=1)[0].rpartition("@")[2]
    host = authority[: authority.index("]") + 1] if authority.startswith("[") and "]" in authority \
        else authority.split(":")[0]
    return host.lower() in hosts


def _links(text: str, hosts: frozenset[str]) -> str:
    """``[t](u)`` to another host keeps its text ``t``; ``![a](u)`` becomes ``a (image removed)``. A ``](``
    whose target cannot be read is broken, so no renderer can read it as a link either. Past ``_MANY`` of them
    (a text built to make the parser slow) every ``](`` is broken, allowed links too."""
    if text.count("](") > _MANY:
        return text.replace("](", "]" + ZWSP + "(")
    at, reads = 0, 0
    while (close := text.find("](", at)) != -1:
        reads += 1
        if reads > _MANY:  # a removed link's text may complete the next one, again and again: stop reading
            return text[:close] + text[close:].replace("](", "]" + ZWSP + "(")
        target = _target(text, close + 1)
        if target is None:
            text, at = text[:close + 1] + ZWSP + text[close + 1:], close + 2
            continue
        dest, end = target
        if _allowed(dest, hosts):  # look inside too: with no '[' before it, the target is text, links and all
            at = close + 2
            continue
        opening = _opening_bracket(text, close)
        if opening is None:
            text, at = text[:close + 1] + text[end:], close + 1
            continue
        image = opening > 0 and text[opening - 1] == "!" and not _escaped(text, opening - 1)
        label = text[opening + 1:close]
        start = opening - 1 if image else opening
        kept = f"{label} {IMAGE_REMOVED}" if image else label
        text = text[:start] + kept + text[end:]
        at = max(0, start - 1)  # the text kept may complete a link with what precedes it: look again
    return text


def _target(text: str, i: int) -> tuple[str, int] | None:
    """(destination, index after the ``)``) of an inline link's ``(dest "title")`` at ``text[i]``, as
    CommonMark reads it; None if it is not one."""
    j = _space(text, i + 1)
    if text.startswith("<", j):
        m = _POINTY.match(text, j)
        if m is None:
            return None
        dest, j = m.group(1), m.end()
    else:
        k, depth = j, 0
        while k < len(text) and k - j < _WINDOW:
            if plain := _PLAIN.match(text, k):  # a run no character of which ends, escapes or nests: skipped at once
                k = min(plain.end(), j + _WINDOW)
                continue
            c = text[k]
            if c == "\\" and k + 1 < len(text):
                k += 2
                continue
            if c <= " " or c == "\x7f" or (c == ")" and depth == 0):
                break
            depth += {"(": 1, ")": -1}.get(c, 0)
            k += 1
        if depth:
            return None
        dest, j = text[j:k], k
    k = _space(text, j)
    if k > j and k < len(text) and text[k] in "\"'(":
        m = _TITLES[text[k]].match(text, k)
        if m is None:
            return None
        k = _space(text, m.end())
    return (dest, k + 1) if text.startswith(")", k) else None


_TITLES = {q: re.compile(rf"{re.escape(q)}(?:[^{re.escape(q + e)}\\]|\\.){{0,{_WINDOW}}}{re.escape(e)}", re.S)
           for q, e in (('"', '"'), ("'", "'"), ("(", ")"))}


_PLAIN = re.compile(r"[^\x00-\x20\x7f()\\]+")
_POINTY = re.compile(r"<((?:[^<>\n\r\\]|\\.)*)>")  # a destination in <...>
_SPACE = re.compile(r"[ \t]*(?:(?:\r\n|\r|\n)[ \t]*)?")


def _space(text: str, i: int) -> int:
    """Past spaces and tabs, and at most one line ending."""
    m = _SPACE.match(text, i)
    return m.end() if m else i


def _escaped(text: str, i: int) -> bool:
    n = 0
    while i - n - 1 >= 0 and text[i - n - 1] == "\\":
        n += 1
    return n % 2 == 1


def _opening_bracket(text: str, close: int) -> int | None:
    depth = 0
    for k in range(close - 1, max(-1, close - _WINDOW), -1):
        if text[k] in "[]" and not _escaped(text, k):
            if text[k] == "]":
                depth += 1
            elif depth == 0:
                return k
            else:
                depth -= 1
    return None


# <scheme:...> autolinks, and any HTML tag with attributes (a tag without any cannot point anywhere; the bot's
# own <details> and <summary> have none).
_ANGLE = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>|<(?=/?[A-Za-z])(?!/?[A-Za-z][A-Za-z0-9-]*\s*/?>)")


def _angle(m: re.Match[str], hosts: frozenset[str]) -> str:
    if m.group(1) is None:
        return "&lt;"
    if _allowed(m.group(1), hosts):
        return m.group()
    scheme, _, rest = m.group(1).partition(":")
    return f"&lt;{scheme}:{ZWSP}{rest}>"


# GFM's extended autolinks: scheme://... (any scheme, to be safe) and www. Each match is the scheme (or www)
# alone, so a URL inside another URL's tail is judged by itself. A scheme is what
# ``(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*\\?:(?=\\?/\\?/)`` matches; that pattern tried every word of a
# text (issue 16: a fifth of a post's defusing), so :func:`_bare_schemes` finds the ``://`` first and walks back.
_SCHEME_END = re.compile(r"\\?:(?=\\?/\\?/)")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SCHEME_CHARS = _LETTERS | frozenset("0123456789+.-")
# The lookbehind after the first letter, not before it: a pattern that starts with a character set is searched
# for that set at C speed, where one that starts with a lookbehind is tried at every position.
_WWW = re.compile(r"[Ww](?<![A-Za-z0-9][Ww])[Ww][Ww](?=\\?\.)")
_TAIL = re.compile(r"[^\s<]{0,300}")  # enough for any host (and cheap where a text repeats "www." for long)


def _bare_schemes(text: str, hosts: frozenset[str]) -> str:
    """``text`` with a zero-width space after each scheme (``evil:``) of a bare URL to a host not in ``hosts``.
    Two readings of the scheme are judged: the whole run of scheme characters before the ``:`` when it starts with a
    letter (what the pattern matched: inside the run its lookbehind cannot hold, and the character after the run must
    be the ``:`` or its ``\\``), and the letters just before the ``:``, whatever precedes them, which is how GitHub's
    autolinker reads it (``1https://evil.example`` is a link to ``https://evil.example`` there; found by an outside
    attack, session 33). Runs lie between colons, so the walks back add up to the text's length at most; past
    ``_MANY_BARE`` schemes none is judged, and none kept."""
    out: list[str] = []
    last, judged = 0, 0
    for m in _SCHEME_END.finditer(text):
        letters = m.start()
        while letters > 0 and text[letters - 1] in _LETTERS:
            letters -= 1
        start = letters
        while start > 0 and text[start - 1] in _SCHEME_CHARS:
            start -= 1
        schemes = {s for s in (start, letters) if s < m.start() and text[s] in _LETTERS}
        if not schemes:
            continue
        judged += 1
        tail = _TAIL.match(text, m.end())
        rest = text[m.start():m.end()] + (tail.group() if tail else "")
        if judged > _MANY_BARE or not all(_allowed(text[s:m.start()] + rest, hosts) for s in schemes):
            out += (text[last:m.end()], ZWSP)
            last = m.end()
    return "".join(out) + text[last:] if out else text


def _www_links(text: str, hosts: frozenset[str]) -> str:
    """``text`` with a zero-width space after each ``www`` of an autolink to a host not in ``hosts``; past
    ``_MANY_BARE`` of them, none is judged, and none kept."""
    judged = 0

    def one(m: re.Match[str]) -> str:
        nonlocal judged
        judged += 1
        tail = _TAIL.match(m.string, m.end())
        allowed = judged <= _MANY_BARE and _allowed("https://www" + (tail.group() if tail else ""), hosts)
        return m.group() if allowed else m.group() + ZWSP
    return _WWW.sub(one, text)


# [label]: destination, also inside quotes and list items; the destination may sit on the next line.
_DEFINITION = re.compile(r"(?:\A|(?<=[\n\r]))"
                         r"((?:[ \t]*(?:>|[-+*](?=[ \t])|\d{1,9}[.)](?=[ \t])))*[ \t]*\[(?:[^\[\]\\]|\\.){1,999}\])"
                         r":([ \t]*(?:(?:\r\n|\r|\n)[ \t]*)?)(<(?:[^<>\n\r\\]|\\.)*>|\S+)")


def _definition(m: re.Match[str], hosts: frozenset[str]) -> str:
    if "\n" in m.group(2) or "\r" in m.group(2):
        # The destination is on the next line, where a quote's or list's marker may come first (`> [r]:` then
        # `> //evil`): what the next line holds is not read here, so the definition is always broken.
        return f"{m.group(1)}{ZWSP}:"
    dest = m.group(3)[1:-1] if m.group(3).startswith("<") else m.group(3)
    return m.group() if _allowed(dest, hosts) else f"{m.group(1)}{ZWSP}:"


# ---- mentions, closing keywords, commands ----------------------------------------------------------------

# GitHub notifies for @name and @org/team after any character that is not a letter, digit or underscore; an
# underscore is taken too (as an emphasis delimiter, `_x_@team`, it is markup and the text node starts at '@').
_MENTION = re.compile(r"@(?<![A-Za-z0-9]@)(?=[A-Za-z0-9])")  # '@' first: found by a literal search (see _WWW)
_HANDLE = re.compile(r"@[A-Za-z0-9][A-Za-z0-9-]*(?:/[A-Za-z0-9_.-]+)?")


def _mention_kept(m: re.Match[str], keep: frozenset[str]) -> bool:
    handle = _HANDLE.match(m.string, m.start())
    return handle is not None and handle.group().rstrip(".") in keep


# The first letter as a set, then the lookbehind, then the rest of the word (see _WWW). An owner/repo reference is
# read to 100 characters a side (GitHub's longest names: 39 and 100): unbounded, the lookahead ran to the text's end
# from every keyword (64 KB of "fix." took 3 s; found by an outside attack, session 33).
_CLOSING = re.compile(r"(?i)[cfr](?<![A-Za-z0-9][cfr])(?:(?<=c)lose[sd]?|(?<=f)ix(?:e[sd])?|(?<=r)esolve[sd]?)"
                      r"(?=[*_~:\s]*+[<\[]?\\?(?:#\d|gh-\d|[\w.-]{1,100}/[\w.-]{1,100}#\d|https?:|www\.))")


def _line_of(m: re.Match[str]) -> str:
    text = m.string
    start = max(text.rfind("\n", 0, m.start()), text.rfind("\r", 0, m.start())) + 1
    end = min((i for i in (text.find("\n", m.start()), text.find("\r", m.start())) if i != -1), default=len(text))
    return text[start:end]


# A line whose first word is /word (not a path: /usr/lib); lines end wherever any bot may think they do. What
# ``(?:\A|(?<=[<breaks>]))((?:[^\S<breaks>]|\ufeff)*+)(?=/[A-Za-z][A-Za-z0-9_-]*(?![A-Za-z0-9_/-]))`` matches,
# found from the /word back to the line's start (:func:`_commands`): the pattern was tried at every position.
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_SLASH_WORD = re.compile(r"/(?=[A-Za-z][A-Za-z0-9_-]*(?![A-Za-z0-9_/-]))")


def _commands(text: str) -> str:
    """``text`` with a zero-width space before each /word that only blanks (not line breaks; a BOM counts as a
    blank) separate from its line's start. Blank runs lie between /words, so the walks back add up to the text."""
    out: list[str] = []
    last = 0
    for m in _SLASH_WORD.finditer(text):
        at = m.start()
        while at > 0 and ((c := text[at - 1]) == "\ufeff" or (c.isspace() and c not in _LINE_BREAKS)):
            at -= 1
        if at == 0 or text[at - 1] in _LINE_BREAKS:
            out += (text[last:m.start()], ZWSP)
            last = m.start()
    return "".join(out) + text[last:] if out else text
