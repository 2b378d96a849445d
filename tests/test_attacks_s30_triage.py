"""Session 30, an outsider attacking the Lead's triage after a5cfc3c (a linear SVM beside naive Bayes, and
``classify.content_share``): an outsider writes only a title and a body and picks a template (``bug``,
``enhancement``, ``security``). A hole is written as the behaviour it should have, ``xfail(strict=True)``."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

from bot.core import classify, classify_learned, events
from bot.core.catalog import load_catalog
from bot.core.triage import decide
from tests.test_attacks_steer import STUFFING, item
from tests.test_cli_triage import call, run_cli

# The same roadmap words as sentences: a rule keyword counts once each, wherever it stands.
ROADMAP_PROSE = ("This is a multi-phase roadmap epic: tracking issue for the migration plan, milestone 1, milestone 2, "
                 "phase 3, long-running project over many sessions, umbrella.")
THANKS = ("Thanks a lot for this wonderful project, I love it and use it every day, great work everyone, keep it up, "
          "amazing community and friendly people, much appreciated. ")


def decided(title: str, body: str, labels: list[str]) -> str | None:
    parsed = events.parse("issues", item(title, body, labels), "d-s30-triage")
    assert isinstance(parsed, events.WorkItem)
    return decide(parsed, load_catalog()).workflow


def junk_words(n: int) -> str:
    rng = random.Random(30)
    return " ".join("".join(rng.choices(string.ascii_lowercase, k=8)) for _ in range(n))


# ---- a security report padded -------------------------------------------------------------------------------

def test_the_old_padding_attack_on_a_security_template_report_stays_fixed() -> None:
    """The model stays out under ``security`` (a work label): five times the old stuffing moves nothing."""
    assert decided("Vulnerability report", f"Please see the details privately.\n\n{STUFFING * 5}",
                   ["security"]) == "security-fix"
    body = "Stored XSS: <script>alert(1)</script> in the comment body runs for every viewer."
    assert decided("XSS in the comment form", f"{body}\n\n{STUFFING}", ["security"]) == "security-fix"


@pytest.mark.xfail(strict=True, reason="hole: the rules' roadmap keywords, written as one sentence, outscore the "
                   "security label (long-running-project 52 against security-fix 22): the old attack with prose")
def test_a_security_template_report_padded_with_roadmap_prose_stays_security_fix() -> None:
    body = f"Please see the details privately.\n\n{ROADMAP_PROSE}"
    assert decided("Vulnerability report", body, ["security"]) == "security-fix"


# ---- stuffing text a maintainer calls none-fits ---------------------------------------------------------------

@pytest.mark.parametrize("body", [f"<!-- {STUFFING} --> hi", f"```\n{STUFFING}\n```\n hi"],
                         ids=["html-comment", "code-fence"])
def test_hidden_or_fenced_stuffing_starts_nothing(body: str) -> None:
    assert decided("Hello", body, []) is None


def test_zero_width_characters_do_not_hide_words_from_the_rules() -> None:
    """Stripping them reads the words as written: the same decision as without them (whatever it is)."""
    assert decided("Hello", STUFFING.replace("a", "a\u200b"), []) == decided("Hello", STUFFING, [])


# Closed in round 17 (classify._stuffed): a body mostly made of the rules' keywords is read by neither the rules nor
# the model. No real issue of the 6,277 labelled ones reads as such a list.
@pytest.mark.parametrize("body", [STUFFING, f"<details><summary>x</summary>\n\n{STUFFING}\n</details> hi",
                                  STUFFING.replace("o", "\u043e"), " and the ".join(STUFFING.split()),
                                  "Hi team, please look: " + STUFFING],
                         ids=["plain", "details", "homoglyph", "fillers", "greeting"])
def test_a_bare_keyword_list_starts_no_costly_workflow(body: str) -> None:
    assert decided("Hello", body, []) is None


def test_explain_says_a_keyword_list_was_not_read(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "issue.json"
    path.write_text(json.dumps({"title": "Hello", "body": STUFFING, "labels": []}))
    code, out, _ = call(capsys, path, explain=True)
    assert code == 0 and "mostly the rules' own keywords" in json.dumps(out)


def test_a_report_that_says_many_keywords_in_prose_is_read() -> None:
    """14 words inside the rules' keywords, 56 outside: a report, read as one (a list needs no more outside than in)."""
    body = ("Since Monday the CI pipeline fails on every pull request: the GitHub Actions workflow runs the build, then "
            "the deploy job times out while pushing the Docker image to the registry. The release workflow on main has "
            "the same problem, so nothing has been deployed for three days. The runner logs show the push hanging at "
            "40% and then the job is cancelled after the timeout. Rerunning does not help.")
    assert decided("Stuck since Monday", body, []) == "devops-pipeline"


# ---- content_share under a template's bug label ------------------------------------------------------------

def test_unknown_junk_gives_the_model_no_share_against_a_bug_label() -> None:
    """Words the model does not know are not counted toward THIN_WORDS: the label keeps its case."""
    assert decided("Something to do", "lorem ipsum " * 40, ["bug"]) == "error-investigation"
    assert decided("Something to do", junk_words(400), ["bug"]) == "error-investigation"


def test_a_thank_you_note_filed_under_the_bug_template_starts_nothing() -> None:
    body = "I love this project, thanks a lot to everyone for the great work, keep it up, you are amazing"
    assert decided("Thanks for the great project", body, ["bug"]) is None


@pytest.mark.xfail(strict=True, reason="hole: two sentences of thanks give the model its whole share (known words "
                   "and word pairs past THIN_WORDS) and its none-fits points (18) outweigh a real bug report (11)")
def test_a_bug_report_padded_with_thanks_keeps_error_investigation() -> None:
    assert decided("Saving fails", "Clicking save shows an error and nothing is saved.", ["bug"]) == "error-investigation"
    body = f"Clicking save shows an error and nothing is saved.\n\n{THANKS * 2}"
    assert decided("Saving fails", body, ["bug"]) == "error-investigation"


# ---- slow or crashing ----------------------------------------------------------------------------------------

def test_huge_bodies_and_many_labels_are_read_only_up_to_their_caps() -> None:
    """MAX_BODY and MAX_WORDS cap what is read of a body (1.8 MB of distinct words took 0.04 s when measured; speed
    lives in benchmarks/, so the test checks the caps, not a time)."""
    for body in (junk_words(200_000), "a ?" * 30_000, "```\n" * 20_000, "# a\n" * 20_000, "漏洞" * 500_000,
                 "<!--" * 50_000):
        text = classify.read("x", body)
        assert len(text.prose) <= classify.MAX_BODY, body[:10]
        feats = classify_learned.features(text.title, text.prose)
        assert sum(f.startswith("w:") for f in feats) <= classify_learned.MAX_WORDS + 1, body[:10]
        assert decided("x", body, []) in (None, *load_catalog().workflows)
    assert decided("crash", "x", [f"bug{i}" for i in range(1000)] + ["bug"]) == "error-investigation"


def test_a_huge_title_is_read_only_up_to_its_cap() -> None:
    """GitHub keeps titles to 256 characters, a payload from elsewhere (``bot triage -``) need not: read whole,
    RELEASE_TITLE's lookaheads took 16 s on 32,000 characters (found by attack). The title is capped as the body is."""
    title = junk_words(4_000)
    assert len(classify.read(title, "").title) == classify.MAX_TITLE
    assert decided(title, "x", ["bug"]) in (None, *load_catalog().workflows)


@pytest.mark.parametrize("stdin", ["[]", '{"title": null, "body": 5, "labels": [{"name": null}]}',
                                   '{"title": "x", "labels": "bug"}', '{"issue": {"title": ["a"], "labels": [1]}}',
                                   "nul"])
@pytest.mark.parametrize("explain", [False, True])
def test_hostile_json_on_stdin_is_refused_without_a_traceback(stdin: str, explain: bool) -> None:
    done = run_cli(*(["--explain"] if explain else []), "-", stdin=stdin)
    assert done.returncode == 2 and "Traceback" not in done.stderr
