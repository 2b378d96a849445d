"""Cold review of 4cb029f (credential edges): plain tests, each failing on that commit and holding since it was mended
(shapes that overlap redacted as one, escapes before a token, '_' beside an AWS key id, OpenSSH's algorithm names)."""

from __future__ import annotations

from bot.agents.gate import secrets_in
from bot.core.sanitize import redact

# Made-up shapes, not credentials: each is built from repeated characters so no scanner takes it for a real key.
_AWS = "AKIA" + "Q" * 16
_PAT = "github_pat_" + "B" * 22


def test_a_newly_caught_slack_token_does_not_uncover_the_key_glued_after_it() -> None:
    """Before 4cb029f the Slack shape after '%3D' was not matched and the Google key after '-' was redacted whole;
    now the Slack match eats 'AIza...' up to '_' and the key's tail is posted."""
    tail = "_" + "p" * 18
    text = "%3Dxoxb-" + "7" * 12 + "-AIza" + "k" * 16 + tail
    assert tail not in redact(text)


def test_an_aws_shape_inside_a_fine_grained_pat_does_not_split_it() -> None:
    """'_' now edges the AWS shape, which is redacted first, so the PAT's match ends at '[redacted]' and its tail
    stays; before, the PAT pattern took the whole string."""
    tail = "_" + "t" * 20
    assert tail not in redact(_PAT + "_" + _AWS + tail)


def test_a_token_after_an_escaped_newline_is_redacted() -> None:
    """A JSON or code string joins lines with a literal backslash-n: 'n' is a letter, so the edge refuses it
    (the same gap the %XX exception closes for '%3D'; open before 4cb029f too)."""
    assert _AWS not in redact('"first\\n' + _AWS + '"')


def test_a_snake_case_constant_is_no_aws_key() -> None:
    """'_' is an identifier character: REGION_ASIAPACIFICNORTHEAST is one identifier, made critical by 4cb029f."""
    assert not [f for f in secrets_in("regions.py", "REGION_ASIAPACIFICNORTHEAST = 1\n") if f.severity == "critical"]


def test_an_openssh_security_key_algorithm_name_is_no_openai_key() -> None:
    """golang.org/x/crypto/ssh and OpenSSH name this algorithm; read as an OpenAI key (before 4cb029f too)."""
    text = 'CertAlgoSKED25519v01 = "sk-ssh-ed25519-cert-v01@openssh.com"\n'
    assert not [f for f in secrets_in("certs.go", text) if f.severity == "critical"]
