"""Session 32, an outsider attacking round 17's two defences in ``bot/core/classify.py``: ``_stuffed`` (a body that
is mostly the rules' keywords is read by neither the rules nor the model) and ``content_share``'s thin text (no
model where no label leads and it knows at most MIN_KNOWN features). An outsider writes a title and a body and
picks a template (``bug``, ``enhancement``, ``security``). A hole is written as the behaviour it should have,
``xfail(strict=True)``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot.core import classify, events
from bot.core.catalog import load_catalog
from bot.core.triage import decide
from tests.test_attacks_s30_triage import junk_words
from tests.test_attacks_steer import STUFFING, item
from tests.test_cli_triage import call

LOREM = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore "
         "magna aliqua enim ad minim veniam quis nostrud")
LIST = "epic umbrella milestone roadmap phase tracking rewrite meta rfc subtask".split()


def decided(title: str, body: str, labels: list[str]) -> events.WorkItem:
    parsed = events.parse("issues", item(title, body, labels), "d-s32-triage")
    assert isinstance(parsed, events.WorkItem)
    return parsed


def workflow(title: str, body: str, labels: list[str] | None = None) -> str | None:
    return decide(decided(title, body, labels or []), load_catalog()).workflow


def stuffed(title: str, body: str) -> bool:
    return classify.weigh(load_catalog().triage, title=title, body=body).stuffed


# ---- (a) keyword lists that evade _stuffed -------------------------------------------------------------------

@pytest.mark.parametrize("body", [" ".join(f"`{k}`" for k in LIST), ".".join(LIST), "\n".join(f"- {k}" for k in LIST),
                                  "| " + " | ".join(LIST[:5]) + " |\n|---|---|---|---|---|\n| " + " | ".join(LIST[5:]),
                                  "".join(LIST)],
                         ids=["code-spans", "dotted", "md-list", "md-table", "glued"])
def test_a_keyword_list_in_markdown_or_punctuation_starts_nothing(body: str) -> None:
    assert workflow("Hello", body) is None


@pytest.mark.xfail(strict=True, reason="hole: more distinct junk words than keyword words is no report either, but "
                   "_stuffed reads it as one: STUFFING + 25 random or lorem-ipsum words starts long-running-project (41)")
@pytest.mark.parametrize("tail", [junk_words(25), LOREM], ids=["random", "lorem"])
def test_a_keyword_list_padded_with_distinct_junk_starts_nothing(tail: str) -> None:
    assert workflow("Hello", f"{STUFFING} {tail}") is None


# Closed (session 33): a run of CJK keywords was one \w+ word to _stuffed (inside=1), so '漏洞注入崩溃취약점' x10 was
# read and started security-fix (17); each CJK character counts as a word now.
def test_a_glued_cjk_keyword_list_starts_nothing() -> None:
    assert workflow("Hello", "漏洞注入崩溃취약점" * 10) is None


def test_a_chinese_report_with_keywords_is_read_as_a_report() -> None:
    """Each character of a Chinese report counts as a word of its own too: its many different ones outnumber the
    keyword characters, so it is read."""
    body = ("登录接口存在SQL注入漏洞：攻击者可以在用户名字段注入任意语句，读取全部用户数据。我们发现这个漏洞还会让服务崩溃，"
            "请尽快修复这个漏洞。")
    assert not classify.weigh(load_catalog().triage, title="登录接口的问题", body=body).stuffed
    assert workflow("登录接口的问题", body) == "security-fix"


@pytest.mark.xfail(strict=True, reason="hole (rules, MIN_SCORE by design): one word weighing 5-6, or stems fed junk "
                   "suffixes, place a near-empty issue: 'epic' long-running-project 5, 'xss' security-fix 6, "
                   "'rewriteeee migrationnnn ...' long-running-project 15; _stuffed needs 10 keyword words")
@pytest.mark.parametrize("body", ["epic", "xss", "rewriteeeee migrationnnnn phaseeeee subtaskkkk incrementallll"],
                         ids=["epic", "xss", "stem-suffixes"])
def test_one_strong_keyword_in_a_greeting_starts_nothing(body: str) -> None:
    assert workflow("Hello", body) is None


# ---- (a) thin text the model reads ------------------------------------------------------------------------

@pytest.mark.parametrize("body", ["notifications " * 50, "sms notifications " * 20, "oauth oauth oauth", "million rows"],
                         ids=["one-word-x50", "bigram-x20", "keyword-x3", "two-words"])
def test_repeated_or_two_known_words_give_the_model_no_say(body: str) -> None:
    assert workflow("Hello", body) is None


# Each is five known features, one past MIN_KNOWN: the share jumps from 0 to all of the weight (24) and the model alone,
# with no rule keyword said, places the issue.
@pytest.mark.xfail(strict=True, reason="hole: MIN_KNOWN is a cliff; 'Hello' + 3-4 words the model knows and no rule "
                   "keyword starts integration-setup 15, database-performance 11, security-fix 17, "
                   "error-investigation 16, devops-pipeline 21")
@pytest.mark.parametrize("body", ["sms notifications sentry", "speed million rows", "arbitrary untrusted steal pickle",
                                  "undefined nil startup fatal", "actions builds wheels chart"],
                         ids=["integration", "database", "security", "error", "devops"])
def test_three_or_four_known_words_start_no_costly_workflow(body: str) -> None:
    assert workflow("Hello", body) is None


# ---- (b) a genuine terse report read as a list -------------------------------------------------------------------

# The slow-query report was read as a list until _stuffed asked for twice as many keyword words as other words.
@pytest.mark.parametrize(("title", "body", "expected"), [
    ("Checkout list", "Slow query: EXPLAIN ANALYZE shows a sequential scan on orders, no index used, Postgres latency "
     "spikes under high load, queries timeout.", "database-performance"),
    pytest.param("Broken since yesterday", "GitHub Actions CI pipeline fails: the Docker build fails, deploy to staging "
                 "Kubernetes via Helm times out, Terraform apply errors. Pipeline red.", "devops-pipeline",
                 marks=pytest.mark.xfail(strict=True, reason="self-harm: a terse report that is nearly all keywords "
                                         "under a vague title reads as a list (_stuffed): its body is dropped, the "
                                         "Lead asks"))],
    ids=["slow-query", "pipeline"])
def test_a_terse_real_report_is_read(title: str, body: str, expected: str) -> None:
    assert workflow(title, body) == expected


def test_a_feature_checklist_is_read_as_a_report() -> None:
    body = ("- [ ] REST endpoint for invoices\n- [ ] pagination\n- [ ] filtering\n- [ ] sorting\n- [ ] OpenAPI spec\n"
            "- [ ] GraphQL query\n- [ ] CRUD for users")
    assert not stuffed("Need these", body)
    assert workflow("Need these", body) == "backend-feature"


# ---- (c) slow or crashing -----------------------------------------------------------------------------------

def seconds(body: str) -> float:
    start = time.perf_counter()
    classify.weigh(load_catalog().triage, title="x", body=body)
    return time.perf_counter() - start


@pytest.mark.parametrize("unit", [STUFFING + " ", " ".join(LIST) + " ", "ci ", "漏洞注入"])
def test_a_megabyte_of_keywords_is_weighed_quickly(unit: str) -> None:
    """MAX_BODY caps it: 0.01-0.05 s measured."""
    assert seconds((unit * (1_000_000 // len(unit) + 1))[:1_000_000]) < 0.5


# Closed: _TRACE's "^\\s+at" / "^\\s*File" on newlines (2.9 s a call), its "[\\w.]*(?:Exception|Error)" on "a.a.a."
# (2.9 s) and _HEADING's "(.*?)[ \\t#]*[ \\t]*$" on "# # # ... x" (3.4-4.2 s) read the same texts in linear time now.
@pytest.mark.parametrize("body", ["\n" * 20_000, "a." * 10_000, "#" + " #" * 9_999 + "x", " at a." * 3_000,
                                  "\n\n" * 10_000 + "at x.", "数据库查询很慢" * 3_000],
                         ids=["newlines", "dotted-run", "heading", "many-frames", "blank-lines-then-frame",
                              "cjk-prose"])  # _stuffed counts each CJK character a word: 20,000 of them
def test_a_hostile_20k_body_is_weighed_quickly(body: str) -> None:
    assert seconds(body) < 0.5


# ---- (d) --explain -------------------------------------------------------------------------------------------

# Closed: on a thin or stuffed body the learned block said "added": true and "its points join each workflow's score"
# with a share of 0 and no points; it now says it added nothing, and why.
# Each reason its own (found by review: one substring told none of them apart, and a thin issue under a label was
# told the model speaks "where no label leads").
@pytest.mark.parametrize(("title", "body", "labels", "reason"), [
    ("Hello", "hi there", [], "feature(s) of the issue's own text"),
    ("Hello", STUFFING, [], "a list rather than a report"),
    ("Qzxv", "", ["bug"], "knows no word of the issue's own text"),
    ("Update the install steps", "The steps are out of date.", ["documentation"], "a documentation label"),
    ("Something to change", "Please look at this when you can, the details are in the linked page.", ["security"],
     "only the rules may overturn a label that names a kind of work"),
], ids=["thin", "stuffed", "thin-under-a-label", "documentation", "work-label"])
def test_explain_says_why_the_model_added_nothing(capsys: pytest.CaptureFixture[str], tmp_path: Path, title: str,
                                                  body: str, labels: list[str], reason: str) -> None:
    path = tmp_path / "issue.json"
    path.write_text(json.dumps({"title": title, "body": body, "labels": labels}))
    code, out, _ = call(capsys, path, explain=True)
    learned = out["evidence"]["learned"]
    assert code == 0 and learned["added"] is False and all(c["points"] == 0 for c in learned["classes"])
    assert learned["why"].startswith("nothing added") and reason in learned["why"]


def test_a_pasted_log_of_one_failure_repeated_is_a_report() -> None:
    """Found by review: a line said again counted again inside keywords, so six copies of one log line read as a
    list and the Lead asked; a repeated line counts once."""
    body = "Every run since Monday:\n" + "\n".join(["docker build failed: image size limit exceeded"] * 6)
    assert not stuffed("Nightly broken", body)
    assert workflow("Nightly broken", body) == "devops-pipeline"


def test_explain_shows_no_subclass_evidence_from_a_listed_body(capsys: pytest.CaptureFixture[str],
                                                               tmp_path: Path) -> None:
    """Found by review: the decision picked no subclass from a listed body, but --explain scored them on it."""
    path = tmp_path / "issue.json"
    path.write_text(json.dumps({"title": "CI pipeline broken", "body": "deploy rollout staging " * 4, "labels": []}))
    code, out, _ = call(capsys, path, explain=True)
    assert code == 0 and out["subclass"] is None
    assert all(s["score"] == 0 for s in out["evidence"]["subclasses"])


# Closed: a body read as a keyword list (neither the rules nor the model read it, --explain says) picked the subclass
# (infrastructure, not the title's deployment); it picks none now.
def test_a_stuffed_body_does_not_pick_the_subclass() -> None:
    body = " ".join(["terraform kubernetes k8s autoscaling monitoring prometheus grafana"] * 2)
    assert stuffed("Deploy fails", body)
    made = decide(decided("Deploy fails", body, []), load_catalog())
    assert made.workflow == "devops-pipeline" and made.subclass == "deployment"


def test_explain_survives_lone_surrogates_and_nul(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "issue.json"
    path.write_text('{"title": "How do I \\ud800?", "body": "Why \\ud800 is this? epic\\u0000 ```", '
                    '"labels": ["bug", "\\ud800"]}')
    code, out, _ = call(capsys, path, explain=True)
    assert code == 0 and "evidence" in out


@pytest.mark.parametrize(("body", "traced"), [
    ("java.lang.IllegalStateException\n    at com.acme.Foo.bar(Foo.java:12)", True),
    ("  at a.b(", True),  # blanks from the start of the text
    ("It broke.\n\nat 5:00 pm the token was revoked", True),  # a blank line before "at", as "^\s+at" read it
    ("It broke.\nat noon.", False),  # "at" opening a line, no blanks before it on that line or a blank one
    ("meet me at x.y tomorrow", False),
])
def test_frames_read_as_the_old_pattern_read_them(body: str, traced: bool) -> None:
    """_traced finds "at" frames as "^\\s+at ..." did, without trying the rest of the body from each line start."""
    assert ("(stack trace)" in classify.read("Crash", body).shapes) is traced


# What the old one-pattern _HEADING gave for each line (its first group that matched), pinned for the rewrite.
@pytest.mark.parametrize(("line", "text"), [
    ("#Env", "Env"), ("####### x", "# x"), ("  ## Steps to reproduce ##  ", "Steps to reproduce"),
    ("    # four spaces", None), ("#", ""), ("**Steps**:", "Steps"), ("Version:", "Version"), ("version:", None),
    ("# a # b #", "a # b"), ("text", None),
])
def test_headings_read_as_the_old_pattern_read_them(line: str, text: str | None) -> None:
    assert classify._heading(line) == text
