"""bot/core/secrets.py's hint: a text in which no credential pattern can match is searched once (issue 16), so
the hint must find every text some pattern matches. Each pattern's own matches, made up by hypothesis from the
pattern itself, are checked against it; a literal missing from the hint lets that pattern's tokens through
``redact`` and the review gate unredacted and unflagged."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.agents import gate
from bot.core.sanitize import redact
from bot.core.secrets import REDACTED, TOKEN_PATTERNS, may_hold_token


def _body(pattern: re.Pattern[str]) -> str:
    """The pattern without its word boundaries, which hypothesis cannot make up text for."""
    return pattern.pattern.replace(r"\b", "")


@pytest.mark.parametrize("name, pattern", TOKEN_PATTERNS, ids=[n for n, _ in TOKEN_PATTERNS])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_text_a_credential_pattern_matches_is_hinted(name: str, pattern: re.Pattern[str], data: st.DataObject) -> None:
    token = data.draw(st.from_regex(_body(pattern), fullmatch=True))
    text = f"before {token} after"
    if not pattern.search(text):  # the boundaries the draw could not respect (a token ending in '-')
        return
    assert may_hold_token(text), (name, token)
    assert pattern.search(redact(text)) is None


def test_real_shaped_tokens_are_redacted_and_flagged_by_the_gate() -> None:
    tokens = ["AKIA" + "ABCDEFGHIJKLMNOP", "ghp_" + "a" * 36, "github_pat_" + "b" * 30, "xoxb-" + "1" * 12,
              "sk_live_" + "c" * 20, "AIza" + "d" * 35, "sk-ant-" + "e" * 30, "sk-proj-" + "f" * 30,
              "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----"]
    for token in tokens:
        assert REDACTED in redact(f"x {token} y"), token
        findings = gate.check([{"path": "app/config.py", "content": f"KEY = '{token}'\n"}], None)
        assert any(f.rule.startswith("credential:") for f in findings), token


def test_a_text_without_any_hint_is_left_as_it_is() -> None:
    text = "The endpoint pages its results; AKI, gh-, xo and sk_ are not credentials."
    assert not may_hold_token(text)
    assert redact(text) == text
