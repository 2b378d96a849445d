"""bot/core/defuse.py's scans rewritten for speed (issue 16) answer exactly as the patterns they replaced.

Each pattern that was tried at every position of a post (a lookbehind first, or a line start) was rewritten to
start where the engine searches fast (a literal, a character set) or to find its end first and walk back. The
patterns as they were are kept here as the reference, and each rewrite is compared with its own on the texts
that would tell them apart (line breaks of every kind, blanks, backslashes, schemes, case folding) and on many
made-up ones. A rewrite that answers otherwise on any text fails here, whatever the oracle of test_defuse.py
makes of its output.
"""

from __future__ import annotations

import random
import re

import pytest

from bot.core import defuse as D

# The patterns as they were before the rewrite (2026-12-04).
OLD_BARE = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*\\?:(?=\\?/\\?/)")
OLD_WWW = re.compile(r"(?<![A-Za-z0-9])[Ww][Ww][Ww](?=\\?\.)")
OLD_MENTION = re.compile(r"(?<![A-Za-z0-9])@(?=[A-Za-z0-9])")
OLD_CLOSING = re.compile(r"(?i)(?<![A-Za-z0-9])(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)"
                         r"(?=[*_~:\s]*+[<\[]?\\?(?:#\d|gh-\d|[\w.-]+/[\w.-]+#\d|https?:|www\.))")
OLD_COMMAND = re.compile(r"(?:\A|(?<=[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]))"
                         r"((?:[^\S\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]|\ufeff)*+)"
                         r"(?=/[A-Za-z][A-Za-z0-9_-]*(?![A-Za-z0-9_/-]))")
HOSTS = frozenset({"github.com"})

ATOMS = ["/", "/a", "/b9_-", "/usr/lib", "/approve", " ", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e",
         "\x1f", "\x85", "\u2028", "\u2029", "\ufeff", "\u00a0", "\u3000", "\u200b", "a", "Z", "0", "+", ".", "-", "_", ":",
         "\\", "//", "\\/", "://", ":\\/\\/", "\\:", "http", "evil.com", "github.com", "www", "WWW", "w", "W", "@", "@a",
         "a@b", "close", "CLOSED", "fixes", "Resolve", "fix", "#1", "gh-1", "o/r#2", "https:", "www.", "[", "]", "]:",
         "[x]:", ">", "<", "*", "~", "é", "ß", "\u017f", "\u212a", "K", "k", "s", "c", "f", "r", "e", "d", "x", "1"]

CRAFTED = ["a://b", "1a://b", "-a://b", "x.a://b", "evil:\\/\\/x", "a\\://x", "a\\\\://x", "é://x", "ſ://x", "://x",
           "https://github.com/x https://evil.com/y", "a:b://c", " /approve", "\ufeff\t/approve", "x\n  /approve",
           "x\x1f/approve", "x\x1c/approve", "\u2028/cmd", "/usr/lib", "/a/b", "a /approve", "www.x", "awww.x", "\\www.x",
           "@a", "a@b", "_@team", "fixes #1", "prefixes #1", "FIXES #1", "ſcloses #1", "Closes: #2", "Kfix #1"]


def _texts(n: int, seed: int = 16) -> list[str]:
    rnd = random.Random(seed)
    return CRAFTED + ["".join(rnd.choice(ATOMS) for _ in range(rnd.randint(1, 30))) for _ in range(n)]


TEXTS = _texts(20_000)


# GitHub's autolinker reads a scheme as the letters just before the colon, whatever precedes them (cmark-gfm walks back
# over letters only): "1https://evil.example" links to https://evil.example there. The old pattern never judged it.
GITHUB_SCHEME = re.compile(r"(?<![A-Za-z])[A-Za-z]+(?=\\?:\\?/\\?/)")


def _reference(text: str, hosts: frozenset[str]) -> str:
    """What _bare_schemes must give (up to _MANY_BARE schemes): a zero-width space after the colon of each scheme the
    old pattern matched, or GitHub's reading found, whose URL is not allowed."""
    ends: set[int] = set()
    for pattern in (OLD_BARE, GITHUB_SCHEME):
        for m in pattern.finditer(text):
            # OLD_BARE's match ends with the colon, GITHUB_SCHEME's before its backslash or colon.
            colon = D._SCHEME_END.match(text, m.end() - 1 if pattern is OLD_BARE else m.end())
            assert colon is not None
            tail = D._TAIL.match(text, colon.end())
            if not D._allowed(text[m.start():colon.end()] + (tail.group() if tail else ""), hosts):
                ends.add(colon.end())
    out: list[str] = []
    last = 0
    for end in sorted(ends):
        out += (text[last:end], D.ZWSP)
        last = end
    return "".join(out) + text[last:]


def test_bare_schemes_defuse_what_the_scheme_pattern_and_github_read() -> None:
    for hosts in (HOSTS, frozenset()):
        for text in TEXTS:
            assert D._bare_schemes(text, hosts) == _reference(text, hosts), text


def test_a_scheme_after_a_digit_is_judged_as_github_reads_it() -> None:
    assert D._bare_schemes("1https://evil.example/x", HOSTS) == f"1https:{D.ZWSP}//evil.example/x"
    assert D._bare_schemes("1https://github.com/x", HOSTS) == "1https://github.com/x"


def test_past_many_bare_urls_none_is_judged_and_none_kept() -> None:
    """Each judged URL reads a 300-character tail: past _MANY_BARE in one text, every scheme and www is defused
    unread (as _links does past _MANY), so a post of thousands of them costs no more than _MANY_BARE reads."""
    allowed = "https://github.com/a " * (D._MANY_BARE + 5)
    out = D.defuse(allowed, hosts=HOSTS)
    assert out.count(D.ZWSP) == 5 and out.startswith(allowed[:200])
    www = "www.github.com " * (D._MANY_BARE + 3)
    assert D.defuse(www, hosts=frozenset({"www.github.com"})).count(D.ZWSP) == 3


def test_commands_are_defused_where_the_line_pattern_matched() -> None:
    for text in TEXTS:
        assert D._commands(text) == OLD_COMMAND.sub(lambda m: m.group(1) + D.ZWSP, text), text


@pytest.mark.parametrize("old, new", [(OLD_WWW, D._WWW), (OLD_MENTION, D._MENTION), (OLD_CLOSING, D._CLOSING)],
                         ids=["www", "mention", "closing"])
def test_reordered_patterns_match_where_they_did(old: re.Pattern[str], new: re.Pattern[str]) -> None:
    for text in TEXTS:
        assert [m.span() for m in new.finditer(text)] == [m.span() for m in old.finditer(text)], text


def test_a_definition_is_looked_for_only_where_one_can_be() -> None:
    """The definition pattern is skipped on a text without ``]:``: every text it matches has one."""
    assert all("]:" in text for text in TEXTS if D._DEFINITION.search(text))
    for text in ("[x]: javascript:alert(1)", "[x]:javascript:alert(1)", "> [x]:\n> //evil.com/a"):
        assert D.defuse(text, hosts=HOSTS) != text, text


def test_a_destination_is_read_no_further_than_the_window_in_runs_or_char_by_char() -> None:
    """Runs of plain characters are skipped at once, but never past ``_WINDOW``: a longer destination is not
    read as a link, whether it is one run or broken by escapes."""
    for dest in ("y" * (D._WINDOW + 500), "y\\)" * D._WINDOW, "y" * (D._WINDOW - 1) + "\\)y"):
        text = f"[a]({dest})"
        assert D._target(text, 3) is None, dest[-10:]
    assert D._target("[a](yy\\)y(z)) t", 3) == ("yy\\)y(z)", 13)
