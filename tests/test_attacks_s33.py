"""Session 33, an outsider attacking today's two speed changes and the Lead's keyword-list rule.

Targets: bot/core/defuse.py's rewritten scans (be5d194: mentions, www, closing keywords, bare ``scheme://``, command
lines, link definitions and destinations), bot/core/secrets.py's ``may_hold_token`` hint in front of ``redact`` and
the review gate, and bot/core/classify.py's ``_stuffed`` (ratio 3, words of its own counted through the learned
model's vocabulary). An outsider writes an issue, a comment, a file name, or talks a model into writing text. A hole
is written as the behaviour it should have, ``xfail(strict=True)``; the plain tests are attacks that were held.

What got through (each said against the code before the change, too):

1. A bare URL whose scheme follows a digit, ``+``, ``.`` or ``-`` (``1https://evil.example``, ``--https://...``)
   stays a live link: cmark-gfm's url_match walks back over ASCII letters only and checks nothing before them,
   where defuse takes the whole run of scheme characters (``1https``) for the scheme, reads none, and allows it.
   The test_defuse oracle asks for a space before the scheme (the spec's prose), so it misses it too. Old code: same.
2. 64 KB of ``:\\/\\/`` takes ~0.9 s to defuse (11 ms before be5d194): every ``:`` is now walked back from and read
   by ``_allowed`` with a 300-character tail, where the old pattern needed a letter first. The old code took as
   long on ``a\\:\\/\\/`` repeated, and both take ~3 s on ``fix.`` repeated (``_CLOSING``'s ``[\\w.-]+/`` lookahead).
3. Credentials after a word character are not redacted nor flagged: URL-encoded (``key%3DAKIA...``), after a
   non-ASCII letter; a PGP private key block has no pattern; 64 KB of unclosed ``-----BEGIN PRIVATE KEY-----``
   takes ~0.9 s to redact (and to gate, on one line). Old code: same (the hint is exact; the patterns' ``\\b``).
4. ``_stuffed``: a keyword list plus one plea of eight common words ("please we need this for the next release")
   starts long-running-project (held before the change: ratio 2, every word counted); terse real reports
   ("Slow query: EXPLAIN ANALYZE seq scan, no index, ...") are read as lists and ignored (before the change, too).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from bot.agents import gate
from bot.core import classify
from bot.core.catalog import learned_model, load_catalog
from bot.core.defuse import ZWSP, defuse
from bot.core.sanitize import clean_for_github, redact
from bot.core.secrets import REDACTED, may_hold_token
from tests.test_attacks_s32_triage import workflow
from tests.test_attacks_steer import STUFFING
from tests.test_defuse import audit

HOSTS = frozenset({"github.com"})
BODY = 65_536  # a body as large as GitHub takes

# Made-up credential shapes, built here so no literal token sits in the file.
AWS = "AKIA" + "IOSFODNN7EXAMPL0"
GITHUB = "ghp_" + "a1B2" * 9
OPENAI = "sk-proj-" + "Q" * 30
GOOGLE = "AIza" + "x" * 35
SLACK = "xoxb-" + "1" * 12
STRIPE = "sk_live_" + "c" * 20


# ---- (1) bare URLs as cmark-gfm reads them ---------------------------------------------------------------

_SCHEME_BACK = re.compile(r"[A-Za-z]*\Z")


def gfm_url_autolinks(text: str) -> list[str]:
    """The bare URLs cmark-gfm's autolink extension links (extensions/autolink.c, url_match): at each ``://``
    it walks back over ASCII letters only, with no check of the character before them, and links when they
    spell http, https or ftp (any case). Checked against cmarkgfm 2025.10.22: '1https://evil.example/x' renders
    ``1<a href="https://evil.example/x">``. Inline code and links aside: the texts below have none."""
    found = []
    for m in re.finditer(r"://([^\s<]*)", text):
        scheme = _SCHEME_BACK.search(text, 0, m.start())
        if scheme and scheme.group().lower() in ("http", "https", "ftp") and m.group(1)[:1].isalnum():
            found.append(scheme.group() + m.group())
    return found


def outside(url: str) -> bool:
    host = re.split(r"[/?#:]", url.split("://", 1)[1], maxsplit=1)[0].lower()
    return host not in HOSTS


# Closed (session 33): a scheme after a digit, '+', '.' or '-' was read by defuse as the scheme '1https' (no scheme:
# allowed), by GitHub as https: the letters before the colon are judged too.
@pytest.mark.parametrize("text", ["1https://evil.example/x", "--https://evil.example/x", "+http://evil.example",
                                  "2.http://evil.example", "-ftp://evil.example/f", "é1https://evil.example"],
                         ids=["digit", "dashes", "plus", "dot", "ftp", "letter-then-digit"])
def test_a_bare_url_after_a_digit_or_dash_is_defused(text: str) -> None:
    for out in (defuse(text, hosts=HOSTS), clean_for_github(text)):
        assert not [u for u in gfm_url_autolinks(out) if outside(u)], out


@pytest.mark.parametrize("text", ["x-https://evil.example", "_http://evil.example", "see...https://evil.example",
                                  "HTTPS://evil.example", "éx1https://evil.example"])
def test_a_bare_url_after_a_letter_or_underscore_is_defused(text: str) -> None:
    out = defuse(text, hosts=HOSTS)
    assert ZWSP in out and not [u for u in gfm_url_autolinks(out) if outside(u)], out


def test_the_cmark_rule_sees_what_the_oracle_misses() -> None:
    """Why (1) needs its own reader: the test_defuse oracle takes a scheme only after a space or ``*_~(``."""
    assert audit("1https://evil.example/x", HOSTS) == []
    assert gfm_url_autolinks("1https://evil.example/x") == ["https://evil.example/x"]
    assert gfm_url_autolinks("ahttps://evil.example/x") == []


# ---- (2) time on one 64 KB body ----------------------------------------------------------------------------

def took(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def repeated(unit: str) -> str:
    return (unit * (BODY // len(unit) + 1))[:BODY]


# Closed (session 33): ~0.9 s (11 ms before be5d194): every ':' before '//' was walked back from and judged; a run
# with no letter before the colon is no scheme, and is not judged now.
@pytest.mark.parametrize("unit", [":\\/\\/", "\\:\\/\\/", ".:\\/\\/", "://&amp;"])
def test_colons_before_escaped_slashes_defuse_quickly(unit: str) -> None:
    assert took(lambda: defuse(repeated(unit), hosts=HOSTS)) < 0.5


# Closed (session 33): 1-4 s, the old code too: 'a\\:\\/\\/' x N read 11,000 tails (past _MANY_BARE schemes none is
# judged now); 'fix.' x N ran _CLOSING's [\\w.-]+/ lookahead to the end from every keyword (read to 100 now).
@pytest.mark.parametrize("body", [repeated("a\\:\\/\\/"), repeated("fix."), "fix" + repeated("-fix")],
                         ids=["scheme-escapes", "fix-dot", "fix-dash"])
def test_hostile_64k_bodies_defuse_quickly(body: str) -> None:
    assert took(lambda: defuse(body, hosts=HOSTS)) < 0.5


# Closed (session 33): ~140 ms (300 ms before be5d194), each www reading a 300-character tail: past _MANY_BARE, none
# is judged.
def test_www_repeated_defuses_quickly() -> None:
    assert took(lambda: defuse(repeated("www."), hosts=HOSTS)) < 0.5


@pytest.mark.parametrize("unit", ["@", " \ufeff", "\t /", "[a]:", "](x", "a:", "fix *", "closes "])
def test_the_rewritten_scans_stay_quick_on_their_own_characters(unit: str) -> None:
    """What each rewrite searches for, 64 KB of it: held (2-36 ms here; the bound leaves room for a busy box)."""
    assert took(lambda: defuse(repeated(unit), hosts=HOSTS)) < 0.5


# ---- (3) credentials in odd surroundings --------------------------------------------------------------------

def flagged(line: str) -> bool:
    findings = gate.check([{"path": "app/config.py", "content": f"X = {line!r}\n"}], None)
    return any(f.rule.startswith("credential:") for f in findings)


# Closed (session 33): a credential after a word character (URL-encoded '=' or ':', a non-ASCII letter) had no \b
# before it: posted unredacted, committed unflagged. A token's edge is now no ASCII letter or digit, bar a %XX's.
@pytest.mark.parametrize("text", ["https://x.example/cb?key%3D" + AWS, "token%3D" + GITHUB, "k=%22" + OPENAI + "%22",
                                  "maps?key%3D" + GOOGLE, "x%3A" + SLACK, "%3D" + STRIPE, "ключ" + AWS],
                         ids=["aws", "github", "openai", "google", "slack", "stripe", "cyrillic"])
def test_a_url_encoded_credential_is_redacted_and_flagged(text: str) -> None:
    assert REDACTED in clean_for_github(text)
    assert flagged(text)


# Closed (session 33): a PGP private key block matched no pattern and was posted whole; it is a private-key kind now.
def test_a_pgp_private_key_block_is_redacted() -> None:
    key = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGXz" + "Qk" * 20 + "\n-----END PGP PRIVATE KEY BLOCK-----"
    assert "lQOYBGXz" not in clean_for_github(f"Here is the key:\n{key}")


@pytest.mark.parametrize("text", ["\u200b" + GITHUB, "\uff1a" + GITHUB, '{"k":"' + GITHUB + '"}', "x\r\n" + AWS,
                                  "\u2028" + SLACK, "key=" + GOOGLE + "\u00e9", "«" + OPENAI + "»",
                                  "-----BEGIN RSA PRIVATE KEY-----\r\nMIIE\r\n-----END RSA PRIVATE KEY-----"])
def test_the_hint_finds_a_credential_in_odd_surroundings(text: str) -> None:
    """The hint is the patterns' own literals, exact: whatever surrounds a token the patterns match, it is there."""
    assert may_hold_token(text)
    assert REDACTED in redact(text) and REDACTED in clean_for_github(text)


def test_a_redacted_token_cannot_be_rebuilt_across_the_hint() -> None:
    """A registered secret is replaced before the hint is asked: what is left of a token split around it is no
    token, and '[redacted]' holds no literal of the hint."""
    assert not may_hold_token(REDACTED)
    assert redact("gh" + "SECRETVALUE" + "p_" + "a" * 36, ["SECRETVALUE"]) == "gh[redacted]p_" + "a" * 36


# Closed (session 33): 64 KB of unclosed BEGIN lines took ~0.9 s, the lazy [\s\S]*?-----END running to the text's end
# from every BEGIN; secrets.KeyBlocks finds the same matches by hand, searching for no END again once none is left.
@pytest.mark.parametrize("unit", ["-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----\n"], ids=["line", "lines"])
def test_unclosed_private_key_lines_are_redacted_quickly(unit: str) -> None:
    assert took(lambda: redact(repeated(unit))) < 0.25


# The gate searches the same pattern, line by line: one 64 KB line of BEGINs took ~1.1 s (25 ms on many lines).
@pytest.mark.parametrize("unit", ["-----BEGIN PRIVATE KEY-----", "-----BEGIN RSA PRIVATE KEY-----\n"], ids=["line", "lines"])
def test_unclosed_private_key_lines_are_gated_quickly(unit: str) -> None:
    body = repeated(unit)
    assert took(lambda: gate.check([{"path": "app/config.py", "content": body}], None)) < 0.25

# ---- (4) the Lead's keyword-list rule -----------------------------------------------------------------------

MODEL = learned_model(load_catalog())


def listed(title: str, body: str) -> bool:
    return classify.weigh(load_catalog().triage, title=title, body=body, learned=MODEL).stuffed


# Held: the ratio-3 / vocabulary version of _stuffed (not landed) let eight common words outweigh the list.
@pytest.mark.parametrize("plea", ["please we need this for the next release",
                                  "the one and only thing we want is this"])
def test_a_keyword_list_with_a_plea_starts_nothing(plea: str) -> None:
    assert workflow("Hello", f"{STUFFING} {plea}") is None


def test_a_keyword_list_with_a_short_plea_starts_nothing() -> None:
    assert listed("Hello", f"{STUFFING} we need it now")
    assert workflow("Hello", f"{STUFFING} we need it now") is None


@pytest.mark.xfail(strict=True, reason="ATTACK SUCCEEDS (self-harm, old code too): a terse real report under a vague "
                   "title is read as a keyword list and ignored: the Lead starts nothing")
@pytest.mark.parametrize(("title", "body", "expected"), [
    ("Checkout", "Slow query: EXPLAIN ANALYZE seq scan, no index, Postgres latency spikes, slow queries timeout, "
     "deadlock.", "database-performance"),
    ("Prod down", "Kubernetes deploy fails: Helm chart, Docker build, CI pipeline, GitHub Actions, Terraform, staging "
     "deploy red.", "devops-pipeline")], ids=["slow-query", "deploy"])
def test_a_terse_keyword_dense_report_is_read(title: str, body: str, expected: str) -> None:
    assert not listed(title, body)
    assert workflow(title, body) == expected
