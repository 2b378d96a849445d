"""Secrets: the credential shapes every posted text and every gate checks, and the values this process holds.

Pure and in memory: the App's key, webhook secret and installation tokens are registered once seen, so
both the log lines and everything posted can redact them whatever their format.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Protocol

# A token's edges: no ASCII letter or digit next to it, so a shape inside a longer ASCII identifier is no token (the
# gate calls a match critical). Not \b: after a non-ASCII letter ("ключAKIA..."), '_' or a URL-encoded '=' or ':'
# ("key%3DAKIA...", whose 'D' is a letter) a token is still a token; so after a backslash escape ("\nAKIA..." in a
# JSON string or a literal, "\u003dAKIA..."): the inner lookbehinds let a letter or digit that ends a %XX or a
# backslash escape through. An AWS key id's edge takes '_' too: its shape is all capitals, as snake_case constants
# are ("REGION_ASIAPACIFICNORTHEAST"). Zero-width negative assertions, which hypothesis makes up as nothing
# (tests/test_secret_hints.py draws tokens from each pattern's text).
_ESCAPED = r"(?<!%[0-9A-Fa-f]{2})(?<!\\[nrt])(?<!\\x[0-9A-Fa-f]{2})(?<!\\u[0-9A-Fa-f]{4})"
_STOP = r"(?![A-Za-z0-9])"


def _token(head: str, rest: str, word: str = "A-Za-z0-9") -> str:
    """A token starting with the fixed-width ``head``, at an edge: no character of ``word`` before it but the end of
    an escape. The edge is checked after the head, looking back over it: a pattern starting with a literal is
    searched for by that literal, where one starting with an assertion is tried at every position (redact on a
    339-character text holding 'sk-': 10 us, not 48)."""
    return rf"{head}(?<![{word}]{_ESCAPED}{head}){rest}"


class TokenPattern(Protocol):
    """What redact and the gate ask of a credential shape: a compiled regex, or a matcher with the same matches."""

    @property
    def pattern(self) -> str: ...

    def search(self, string: str, pos: int = 0) -> re.Match[str] | None: ...

    def finditer(self, string: str, pos: int = 0) -> Iterator[re.Match[str]]: ...

    def sub(self, repl: str, string: str) -> str: ...


_KEY_KIND = r"(?:(?:RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY|PGP PRIVATE KEY BLOCK)"
_KEY_BEGIN = re.compile(rf"-----BEGIN {_KEY_KIND}-----")
_KEY_END = re.compile(rf"-----END {_KEY_KIND}-----")
_SPAN = re.compile(r"[\s\S]*")  # matched between two positions: a real re.Match for a span found by hand


class KeyBlocks:
    r"""The private-key pattern ``BEGIN(?:[\s\S]*?END)?``: the whole block where it is whole (so redaction removes
    the key material), else the BEGIN line. Found by hand, with exactly the regex's matches, in linear time: the
    regex runs its lazy group to the text's end from every BEGIN with no END after it (64 KB of BEGIN lines: ~1 s).
    Each BEGIN is found as the regex finds it, then the first END starting at or after its end (what the lazy group
    stops at); once no END lies after a position, none is searched for again. ``pattern`` is the regex itself
    (the reference tests/test_secret_patterns.py compares against, and what hypothesis draws keys from)."""

    pattern = rf"{_KEY_BEGIN.pattern}(?:[\s\S]*?{_KEY_END.pattern})?"

    def _spans(self, string: str, pos: int) -> Iterator[tuple[int, int]]:
        no_end_from = len(string) + 1  # no END starts at or after this position
        while begin := _KEY_BEGIN.search(string, pos):
            stop = begin.end()
            if stop < no_end_from:
                end = _KEY_END.search(string, stop)
                if end is None:
                    no_end_from = stop
                else:
                    stop = end.end()
            yield begin.start(), stop
            pos = stop  # matches do not overlap: the next BEGIN is searched for after this one's end

    def finditer(self, string: str, pos: int = 0) -> Iterator[re.Match[str]]:
        for start, stop in self._spans(string, pos):
            match = _SPAN.match(string, start, stop)
            if match is None:  # cannot be: [\s\S]* matches between any two positions
                raise RuntimeError(f"no match object for the key block at {start}:{stop}")
            yield match

    def search(self, string: str, pos: int = 0) -> re.Match[str] | None:
        return next(self.finditer(string, pos), None)

    def sub(self, repl: str, string: str) -> str:
        """``string`` with every match replaced by ``repl``, taken as it is (no group references)."""
        parts: list[str] = []
        last = 0
        for start, stop in self._spans(string, 0):
            parts += (string[last:start], repl)
            last = stop
        return "".join(parts) + string[last:] if parts else string


# Credential shapes, shared with sanitize.clean_for_github (which redacts them from posted text).
TOKEN_PATTERNS: tuple[tuple[str, TokenPattern], ...] = (
    ("AWS access key id", re.compile(_token("(?:AKIA|ASIA)", "[0-9A-Z]{16}(?![A-Za-z0-9_])", word="A-Za-z0-9_"))),
    ("GitHub token", re.compile(_token("gh[opsur]_", rf"[A-Za-z0-9]{{36,255}}{_STOP}") + "|"
                                + _token("github_pat_", rf"[A-Za-z0-9_]{{22,255}}{_STOP}"))),
    ("Slack token", re.compile(_token("xox[abposr]-", "[A-Za-z0-9-]{10,}"))),
    ("Stripe live key", re.compile(_token("[sr]k_live_", rf"[A-Za-z0-9]{{16,}}{_STOP}"))),
    ("Google API key", re.compile(_token("AIza", "[0-9A-Za-z_-]{35}"))),
    ("Anthropic API key", re.compile(_token("sk-ant-", "[A-Za-z0-9_-]{20,}"))),
    # Not OpenSSH's security-key algorithm names ("sk-ssh-ed25519-cert-v01@openssh.com", "sk-ecdsa-sha2-...").
    ("OpenAI API key", re.compile(_token("sk-", "(?!ant-|ssh-|ecdsa-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"))),
    ("private key", KeyBlocks()),
)
REDACTED = "[redacted]"
# A literal every match of a pattern above holds: a text holding none is searched once, not once per pattern (issue 16:
# every string a model returns is redacted, most hold none).
_HINTS = re.compile(r"AKIA|ASIA|gh[opsur]_|github_pat_|xox[abposr]-|[sr]k_live_|AIza|sk-|-----BEGIN ")


def may_hold_token(text: str) -> bool:
    """False when no pattern of TOKEN_PATTERNS can match ``text``."""
    return _HINTS.search(text) is not None

MAX_SECRETS = 20_000  # installation tokens of the last hours, the App's own secrets: the newest are kept
_secrets: dict[str, None] = {}  # insertion-ordered: the oldest go first
_secret_pattern: list[re.Pattern[str] | None] = [None]
# Log lines are scrubbed on the log thread while tokens are added on the event loop: one lock, so a pattern built
# from the old secrets is never kept after a new one was added (it would leave that token in the logs).
_lock = threading.Lock()


def add_secret(value: str | None) -> None:
    """Redact ``value`` from every log line from now on (installation tokens, keys), whatever its format."""
    if not value or len(value) < 8:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets[value] = None
        while len(_secrets) > MAX_SECRETS:
            del _secrets[next(iter(_secrets))]
        _secret_pattern[0] = None


def scrub(text: str) -> str:
    """``text`` with every registered secret value replaced by ``[redacted]``."""
    if not _secrets:
        return text
    pattern = _secret_pattern[0]
    if pattern is None:
        with _lock:
            pattern = _secret_pattern[0]
            if pattern is None:
                pattern = _secret_pattern[0] = re.compile(
                    "|".join(re.escape(v) for v in sorted(_secrets, key=len, reverse=True)))
    return pattern.sub(REDACTED, text)


def secrets() -> tuple[str, ...]:
    """The registered secret values (for redacting what is posted, too)."""
    with _lock:
        return tuple(_secrets)
