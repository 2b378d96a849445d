"""The shortcuts that keep posting cheap at scale (issue 16) change no output: the cached order of the secrets
to redact belongs to the secrets it was made from, and the block finder's quick exits see every fence and
every HTML block a full read would."""

from __future__ import annotations

from bot.core.defuse import ZWSP, defuse
from bot.core.sanitize import redact

HOSTS = frozenset({"github.com"})


def test_each_set_of_secrets_redacts_its_own_values_however_often_they_alternate() -> None:
    first, second = ("alpha-secret-1", "beta"), ("gamma-secret-2", "delta")  # as many, as long
    text = "alpha-secret-1 beta gamma-secret-2 delta"
    for _ in range(2):  # the second round is served from the cache
        assert redact(text, first) == "[redacted] [redacted] gamma-secret-2 delta"
        assert redact(text, second) == "alpha-secret-1 beta [redacted] [redacted]"
        assert redact(text, list(first)) == "[redacted] [redacted] gamma-secret-2 delta"  # any iterable


def test_the_longer_of_two_overlapping_secrets_is_redacted_whole() -> None:
    assert redact("key=abcdefgh", ("abcd", "abcdefgh")) == "key=[redacted]"


def test_a_tilde_fence_is_code_and_text_without_a_fence_is_prose() -> None:
    assert defuse("~~~\n@octocat\n~~~", hosts=HOSTS) == "~~~\n@octocat\n~~~"
    assert defuse("~~ @octocat ~~", hosts=HOSTS) == f"~~ @{ZWSP}octocat ~~"


def test_an_html_block_indented_three_spaces_swallows_the_fence_inside_it() -> None:
    text = "   <div>\n```\n@octocat\n```\n</div>"
    assert f"@{ZWSP}octocat" in defuse(text, hosts=HOSTS)
    assert "@octocat" in defuse(text.replace("   <div>", "text"), hosts=HOSTS)  # without it, the fence is code
