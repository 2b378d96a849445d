"""bot/core/secrets.py's credential shapes where they meet other text (session 33).

A token's edge: no ASCII letter or digit beside it, except the one ending a URL escape (``%3D``), so a token after a
URL-encoded '=', '_' or a non-ASCII letter is redacted and flagged, and a shape inside a longer ASCII identifier is
not (the gate calls a match critical). Private keys: ``KeyBlocks`` finds by hand, in linear time, exactly what its
own regex (``KeyBlocks.pattern``, the reference here) finds, PGP key blocks included.
"""

from __future__ import annotations

import random
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.agents import gate
from bot.core.sanitize import redact
from bot.core.secrets import REDACTED, KeyBlocks

# Made-up credential shapes, built here so no literal token sits in the file.
AWS = "AKIA" + "IOSFODNN7EXAMPL0"
GITHUB = "ghp_" + "a1B2" * 9
OPENAI = "sk-proj-" + "Q" * 30
STRIPE = "sk_live_" + "c" * 20


def flagged(line: str) -> bool:
    findings = gate.check([{"path": "app/config.py", "content": f"X = {line!r}\n"}], None)
    return any(f.rule.startswith("credential:") for f in findings)


# ---- a token's edges -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["%3D" + AWS, "%3d" + GITHUB + "%26", "q=%22" + OPENAI, "%2C" + STRIPE, "_" + STRIPE,
                                  "MY_KEY_" + GITHUB, "é" + OPENAI, "鍵" + STRIPE, GITHUB + "_ID", AWS + "ключ",
                                  "first\\n" + AWS, "x\\u003d" + AWS, "\\x3d" + GITHUB],
                         ids=["escape", "lower-escape", "quote-escape", "comma-escape", "underscore",
                              "identifier-underscore", "accented", "cjk", "underscore-after", "cyrillic-after",
                              "backslash-n", "backslash-u", "backslash-x"])
def test_a_token_beside_no_ascii_letter_or_digit_is_redacted_and_flagged(text: str) -> None:
    assert REDACTED in redact(text)
    assert flagged(text)


# An AWS key id's shape is all capitals, as snake_case constants are: '_' is part of a word beside it.
@pytest.mark.parametrize("text", ["x" + AWS, "9" + AWS, AWS + "X", "%3Z" + AWS, "3D" + AWS, "a" + GITHUB,
                                  "disk" + OPENAI[2:], "risk" + STRIPE[2:], "KEY_" + AWS, AWS + "_ID", "\\q" + AWS],
                         ids=["letter", "digit", "letter-after", "no-escape", "escape-without-percent", "github",
                              "openai", "stripe", "aws-underscore", "aws-underscore-after", "not-an-escape"])
def test_a_shape_inside_a_longer_ascii_identifier_is_no_token(text: str) -> None:
    assert redact(text) == text
    assert not flagged(text)


# ---- PGP private key blocks ----------------------------------------------------------------------------------

PGP_BEGIN = "-----BEGIN PGP PRIVATE KEY BLOCK-----"
PGP_END = "-----END PGP PRIVATE KEY BLOCK-----"


def test_a_whole_pgp_key_block_is_redacted_whole_and_flagged() -> None:
    text = f"key:\n{PGP_BEGIN}\n\nlQOYBGXz{'Qk' * 20}\n=AbCd\n{PGP_END}\nthanks"
    assert redact(text) == f"key:\n{REDACTED}\nthanks"
    findings = gate.secrets_in("keys/release.asc", text)
    assert [f.rule for f in findings] == ["credential:private key"]


def test_an_unclosed_pgp_key_block_loses_its_begin_line() -> None:
    assert redact(f"{PGP_BEGIN}\nlQOYBGXz") == f"{REDACTED}\nlQOYBGXz"
    assert redact("-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQIN") == "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQIN"


# ---- KeyBlocks against its regex -----------------------------------------------------------------------------

KINDS = ["", "RSA ", "EC ", "OPENSSH ", "DSA ", "ENCRYPTED "]
HEADS = [f"-----{edge} {kind}PRIVATE KEY" for edge in ("BEGIN", "END") for kind in KINDS]
HEADS += ["-----BEGIN PGP PRIVATE KEY BLOCK", "-----END PGP PRIVATE KEY BLOCK", "-----BEGIN PGP PUBLIC KEY BLOCK"]
# Whole lines, heads whose closing dashes the next piece may supply ('KEY-----BEGIN'), and their fragments.
PIECES = [head + "-----" for head in HEADS] + HEADS + [
    "-----", "----", "-", "-----BEGIN ", "-----END ", "PRIVATE KEY-----", "KEY", " BLOCK-----", "RSA ", "PGP ",
    "\r\n", "\n", "\r", " ", "x", "MIIE", "=ab", ""]
REFERENCE = re.compile(KeyBlocks.pattern)
BLOCKS = KeyBlocks()


def same_as_the_regex(text: str) -> None:
    assert [m.span() for m in BLOCKS.finditer(text)] == [m.span() for m in REFERENCE.finditer(text)], text
    assert [m[0] for m in BLOCKS.finditer(text)] == [m[0] for m in REFERENCE.finditer(text)], text
    assert BLOCKS.sub(REDACTED, text) == REFERENCE.sub(REDACTED, text), text
    for pos in {0, 1, len(text) // 2, len(text)}:
        found, expected = BLOCKS.search(text, pos), REFERENCE.search(text, pos)
        assert (found and found.span()) == (expected and expected.span()), (text, pos)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14))
def test_key_blocks_match_as_their_regex_does(pieces: list[str]) -> None:
    same_as_the_regex("".join(pieces))


def test_key_blocks_match_as_their_regex_does_on_many_made_up_texts() -> None:
    rng = random.Random(33)
    for _ in range(20_000):
        same_as_the_regex("".join(rng.choices(PIECES, k=rng.randint(0, 20))))



def test_a_large_file_of_unclosed_begin_lines_is_read_in_linear_time() -> None:
    """A file the gate reads whole (no diff: ``secrets_in``) can pass 64 KB. Searching for an END again from every
    BEGIN after none was found is quadratic even with the engine's fast literal search: over a second here, ~30 ms not."""
    text = "-----BEGIN EC PRIVATE KEY-----" * 9_000  # 270 KB on one line, with no END
    start = time.perf_counter()
    assert redact(text) == REDACTED * 9_000
    assert len(gate.secrets_in("keys/all.pem", text)) == 1
    assert time.perf_counter() - start < 0.25
