"""How the Lead reads issues no workflow fits, and the boundaries beside them (issue 15, point 2).

Each rule here was added while tuning on the tuning part of ``benchmarks/triage/issues.jsonl``; the texts are
written for these tests in the shape of the real issues that showed the need. Every test names the rule it keeps:
with the rule removed, the test fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from bot.core import classify, classify_explain
from bot.core.catalog import load_catalog

TRIAGE: Mapping[str, Any] = load_catalog().triage


def placed(title: str, body: str = "", labels: tuple[str, ...] = ()) -> str | None:
    """The workflow the Lead places the item in (None: it asks), checked against what ``explain`` reports."""
    c, evidence = classify_explain.explain(TRIAGE, title=title, body=body, labels=labels)
    assert c == classify.classify(TRIAGE, title=title, body=body, labels=labels)
    assert all(k.score == sum(h.weight for h in k.hits) for k in evidence.candidates)
    return c.workflow


# ---- a title that asks to change a document (DOC_TITLE) ------------------------------------------------------

@pytest.mark.parametrize(("title", "body", "labels"), [
    ("Improve guide for Discord notifications", "The guide should show where to paste the webhook URL.", ()),
    ("Update README -> new roadmap", "Say in the README what we plan for the next two versions.", ()),
    ("Add roadmap section to the README", "Share where the project is going.", ()),
    ("Docs: how to add a REST endpoint", "Contributors keep asking which files a new endpoint touches.",
     ("enhancement",)),
    ("Add 'Get Started' page", "I'm new to this and could not find where to begin.", ("enhancement",)),
])
def test_a_title_that_asks_to_change_a_document_asks(title: str, body: str, labels: tuple[str, ...]) -> None:
    assert placed(title, body, labels) is None


@pytest.mark.parametrize(("title", "body", "expected"), [
    ("Docs build fails on CI", "Since Monday the GitHub Actions job that builds the docs fails at the sphinx step.",
     "devops-pipeline"),
    ("README example crashes with TypeError", "Running the first example raises TypeError: 'NoneType' object.",
     "error-investigation"),
    ("Fix XSS in docs search", "The search box echoes the query into the page unescaped.", "security-fix"),
])
def test_a_failure_in_or_around_the_docs_still_places(title: str, body: str, expected: str) -> None:
    assert placed(title, body) == expected


def test_a_document_named_by_its_file_is_documentation() -> None:
    body = "Adding a security policy file that explains how to report a vulnerability is best practice."
    assert placed("Create SECURITY.md", body) is None
    # The file's name is read as "docs", not the word in it; a report about such a file still places.
    assert placed("Stored XSS when rendering README.md previews", "The preview runs injected script.") == "security-fix"


def test_broken_links_in_the_docs_are_documentation_whatever_the_form() -> None:
    title = "Broken links on the Advanced page of the documentation"
    assert placed(title, "Every link on that page leads to a 404.", ("bug",)) is None


# ---- a version's release chore (RELEASE_TITLE) -----------------------------------------------------------------

def test_a_release_checklist_is_a_chore_not_a_project() -> None:
    body = "- [ ] tag the commit\n- [ ] push the tags\n- [ ] note the progress in the changelog"
    assert placed("v2.1.0 release checklist", body) is None
    assert placed("Release workflow fails to publish v1.2.0 to PyPI", "The upload step exits 403.") == "devops-pipeline"


# ---- a keyword inside a longer one (_inside) ------------------------------------------------------------------

def test_a_keyword_said_inside_a_longer_one_counts_once() -> None:
    body = "It would be slick to log in with a Google account."
    assert placed("Feature Request: Google OAuth sign-in", body) == "integration-setup"
    # A longer keyword that weighs less is a bonus on top ("mcp server" beside "mcp"): both count.
    weighed = classify.weigh(TRIAGE, title="Support MCP server configuration", body="")
    integration = next(k for k in weighed.cases if k.workflow == "integration-setup")
    assert {h.pattern for h in integration.hits} >= {"mcp", "mcp server"}


# ---- Latin keywords among Chinese, Japanese or Korean (_WORD) --------------------------------------------------

def test_a_latin_keyword_among_cjk_characters_is_a_word() -> None:
    assert placed("没法build arm64的docker image", "在x64下可以build docker image，但是arm64的不行。") == "devops-pipeline"


# ---- a tie goes to the content over an issue-type label (Case.by_form) ------------------------------------------

def test_a_tie_goes_to_the_content_over_an_issue_type_label() -> None:
    title, body = "Docker build on arm64 failing", "The Dockerfile builds on amd64 but stops on arm64."
    weighed = classify.weigh(TRIAGE, title=title, body=body, labels=("bug",))
    scores = {k.workflow: k.score for k in weighed.cases}
    assert abs(scores["devops-pipeline"] - scores["error-investigation"]) <= classify.MARGIN  # a tie, both in the title
    assert placed(title, body, ("bug",)) == "devops-pipeline"
    _, evidence = classify_explain.explain(TRIAGE, title=title, body=body, labels=("bug",))
    loser = next(k for k in evidence.candidates if k.workflow == "error-investigation")
    assert "issue-type label" in loser.verdict


def test_an_api_reference_doc_to_update_is_documentation() -> None:
    title = "Update API reference doc with each endpoint's request parameters and response model"
    body = "The API reference lists the endpoints but none of their parameters or sample responses."
    assert placed(title, body, ("Feature/Change Description",)) is None


# ---- a body that asks the maintainers something (body_question) ---------------------------------------------

def test_a_body_that_asks_is_evidence_that_no_workflow_fits() -> None:
    title, labels = "CI checks fail sometimes for no reason", ("type-Question",)
    asked = "Why does the CI job fail at random on pull requests? Rerunning it passes."
    assert placed(title, asked, labels) is None
    _, evidence = classify_explain.explain(TRIAGE, title=title, body=asked, labels=labels)
    assert "(question in the body)" in {h.pattern for h in evidence.against}
    # The same report told rather than asked places; so does a failure whose reporter also asks what happened.
    assert placed(title, "The CI job fails at random on pull requests. Rerunning it passes.", labels) == "devops-pipeline"
    body = "Since today the docker build stops while installing helm.\nDoes anyone have an idea what happened there?"
    assert placed("Docker build fails", body) == "devops-pipeline"


def test_a_question_needs_words_on_one_line() -> None:
    assert classify.body_question("what now\n?") is None  # a lone "?" under a line is no question
    assert classify.body_question("see https://example.com/a?b=1 for details") is None


# ---- "Document ..." as a verb (DOC_TITLE) ------------------------------------------------------------------

def test_document_as_the_verb_of_a_title_is_documentation() -> None:
    body = "The list endpoints accept page and per_page but the reference does not say so."
    assert placed("Document the pagination parameters of the list endpoints", body) is None
    assert placed("Document upload fails with a 500", "Uploading a PDF returns an internal server error.") == (
        "error-investigation")


# ---- keyword data in workflows/triage.yml, each with the real shape that asked for it ----------------------------

@pytest.mark.parametrize(("title", "body", "expected"), [
    ("Rewriting the frontend in React", "Let's use this issue to plan moving the options page and popup to React.",
     "long-running-project"),  # rewrit*: "rewriting" and "rewritten" are the rewrite too
    ("GH Actions - push container fails", "The action that pushes the image keeps failing.", "devops-pipeline"),
    ("select count(*) is so slow", "Counting a 40 million row table takes minutes.", "database-performance"),
    ("Error message after upgrade", "The app shows an error message on start.", "error-investigation"),
    ("Roadmap to 3.0", "Is there a public roadmap towards 3.0?", None),  # a roadmap is a document to ask about
])
def test_keywords_added_while_tuning(title: str, body: str, expected: str | None) -> None:
    assert placed(title, body) == expected
