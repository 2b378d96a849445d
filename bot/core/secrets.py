"""Secrets: the credential shapes every posted text and every gate checks, and the values this process holds.

Pure and in memory: the App's key, webhook secret and installation tokens are registered once seen, so
both the log lines and everything posted can redact them whatever their format.
"""

from __future__ import annotations

import re
import threading

# Credential shapes, shared with sanitize.clean_for_github (which redacts them from posted text).
TOKEN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("GitHub token", re.compile(r"\b(?:gh[opsur]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b")),
    ("Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("Stripe live key", re.compile(r"\b[sr]k_live_[A-Za-z0-9]{16,}\b")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    ("Anthropic API key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}")),
    ("OpenAI API key", re.compile(r"\bsk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}")),
    # The whole block where it is whole (so redaction removes the key material), else the BEGIN line.
    ("private key", re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----"
                               r"(?:[\s\S]*?-----END (?:RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----)?")),
)
REDACTED = "[redacted]"
# A literal every match of a pattern above holds: a text holding none is searched once, not once per pattern (the
# patterns start with \b, so each is tried at every position; issue 16: every string a model returns is redacted).
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
