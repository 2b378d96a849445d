"""The Lead weighs labels with content (issue 15, point 2), on real-shaped issues written for these tests.

A label is strong evidence, not a verdict: a ``bug`` label on a slow-query, XSS or broken-workflow report
loses to what the report says; thin evidence and issues no workflow fits are asked about; the spec's
devops sub-classification is kept; ``explain`` reports the very scores the decision used.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import pytest

from bot.core import classify, classify_explain
from bot.core.catalog import load_catalog
from bot.core.classify import Classification

TRIAGE: Mapping[str, Any] = load_catalog().triage

SLOW_QUERY = """Since we passed 2M rows the orders page takes ~40s to load.

```
EXPLAIN ANALYZE SELECT * FROM orders WHERE customer_id = 42;
Seq Scan on orders  (cost=0.00..48231.00 rows=12 width=96)
```

There is no index on `customer_id`; the query planner falls back to a full table scan."""

XSS = """The comment preview renders user input as HTML without escaping it.

Steps: post a comment containing `<img src=x onerror=alert(document.cookie)>` and open the preview; the script
runs in every reader's session. This is a stored XSS."""

BROKEN_WORKFLOW = """Every push since yesterday shows a failed run in GitHub Actions with "Invalid workflow file".
`.github/workflows/test.yml` line 14 uses `runs-on` inside `steps`, so the pipeline never starts."""

CRASH_TRACE = """It would be nice if an empty config file were accepted. Today the app stops immediately:

```
Traceback (most recent call last):
  File "/usr/lib/python3.12/site-packages/notes/app.py", line 88, in load
    settings = yaml.safe_load(fh)["settings"]
TypeError: 'NoneType' object is not subscriptable
```"""

BUG_TEMPLATE = """- [x] I have read the security policy
- [x] I searched the existing issues

### Describe the bug
Saving a note with an emoji in its title crashes the desktop app.

### Steps to reproduce
1. Create a note titled "🚀 launch"
2. Press Ctrl+S

### Environment
- Installed with: Docker image 2.4 on Kubernetes
- Browser: Firefox 128"""

TRACKER = """Moving attachments from the local disk to object storage, one step at a time.

- [ ] #101 write attachments to both stores
- [ ] #102 backfill the existing files
- [ ] acme/files#7 switch reads to the object store
- [ ] #104 remove the local-disk code"""


def decide(title: str, body: str = "", labels: tuple[str, ...] = (), paths: tuple[str, ...] = ()) -> Classification:
    """The Lead's classification, checked to be exactly what ``explain`` reports with its evidence."""
    c, evidence = classify_explain.explain(TRIAGE, title=title, body=body, labels=labels, paths=paths)
    assert c == classify.classify(TRIAGE, title=title, body=body, labels=labels, paths=paths)
    weighed = classify.weigh(TRIAGE, title=title, body=body, labels=labels, paths=paths)
    assert {k.workflow: k.score for k in evidence.candidates} == {k.workflow: k.score for k in weighed.cases}
    assert all(k.score == sum(h.weight for h in k.hits) for k in evidence.candidates)
    if c.workflow:
        assert evidence.candidates[0].workflow == c.workflow and evidence.candidates[0].score >= classify.MIN_SCORE
    return c


def hits(title: str, body: str = "", labels: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """Each workflow's matched patterns."""
    weighed = classify.weigh(TRIAGE, title=title, body=body, labels=labels)
    return {k.workflow: {h.pattern for h in k.hits} for k in weighed.cases}


# ---- a label against the content ---------------------------------------------------------------------

@pytest.mark.parametrize("title, body, expected", [
    ("Orders page is slow for large customers", SLOW_QUERY, "database-performance"),
    ("Comment preview executes injected scripts", XSS, "security-fix"),
    ("CI no longer runs on push", BROKEN_WORKFLOW, "devops-pipeline"),
])
def test_a_bug_label_loses_to_what_the_report_says(title: str, body: str, expected: str) -> None:
    c = decide(title, body, ("bug",))
    assert c.workflow == expected, c.reason
    weighed = classify.weigh(TRIAGE, title=title, body=body, labels=("bug",))
    bug = next(k for k in weighed.cases if k.workflow == "error-investigation")
    assert "bug" in bug.labels  # the label counted, for error-investigation, and lost
    assert decide(title, body).workflow == expected  # and the content alone says the same


def test_a_crash_with_a_traceback_is_investigated_even_when_filed_as_an_enhancement() -> None:
    """The reporter chose the feature template, but the work is finding why the app crashes on an empty file:
    a maintainer starts error-investigation, whose first step reads the traceback."""
    c = decide("App crashes when the config file is empty", CRASH_TRACE, ("enhancement",))
    assert c.workflow == "error-investigation", c.reason
    assert "(stack trace)" in hits("x", CRASH_TRACE)["error-investigation"]


def test_a_stack_trace_is_evidence_of_an_error_by_its_shape() -> None:
    """The words of a traceback sit in a code block and do not count as words; its shape does."""
    c = decide("Saving a draft fails", CRASH_TRACE.split("\n\n", 1)[1])
    assert c.workflow == "error-investigation", c.reason


def test_words_in_code_blocks_do_not_count_as_prose() -> None:
    body = ("Add an endpoint that exports invoices as JSON, paginated.\n\n"
            "```json\n{\"error\": null, \"exception\": null, \"crash_report\": \"traceback\"}\n```")
    c = decide("Export invoices through the REST API", body)
    assert c.workflow == "backend-feature", c.reason
    assert not hits("x", body)["error-investigation"]


def test_a_label_the_repository_chose_weighs_more_than_an_issue_type_label() -> None:
    c = decide("Dashboard takes ten seconds to open", "", ("bug", "performance"))
    assert c.workflow == "database-performance", c.reason


def test_labels_are_read_through_prefixes_and_emoji() -> None:
    for label, workflow in [("kind/bug", "error-investigation"), ("Type: Security 🔒", "security-fix"),
                            ("T-Defect", "error-investigation"), ("🐛 bug", "error-investigation"),
                            ("area: CI", "devops-pipeline"), ("devops :wrench:", "devops-pipeline"),
                            (".Epic", "long-running-project"), ("a/performance", "database-performance")]:
        weighed = classify.weigh(TRIAGE, title="x", body="", labels=(label,))
        assert weighed.top is not None and weighed.top.workflow == workflow and weighed.top.labels == (label,), label


def test_a_label_matched_by_its_prefix_alone_weighs_like_an_issue_type_label() -> None:
    """epic:dashboard names the epic an issue belongs to: one feature of it is still backend work."""
    c = decide("[FR-5.4] CSV/Excel export", "Backend returns CSV for the filtered list.", ("backend", "epic:dashboard"))
    assert c.workflow == "backend-feature", c.reason
    weighed = classify.weigh(TRIAGE, title="x", body="", labels=("epic:dashboard",))
    assert weighed.top is not None and weighed.top.workflow == "long-running-project"
    assert weighed.top.score == classify.TYPE_LABEL_WEIGHT


@pytest.mark.parametrize("labels", [("",), ("   ",), ("🐛",), ("/",), (":",), ("x" * 5000,), ("::bug::",)])
def test_odd_labels_never_crash(labels: tuple[str, ...]) -> None:
    assert decide("Dashboard", "", labels).workflow is None


# ---- reading like a maintainer ------------------------------------------------------------------------

def test_title_words_count_more_than_body_words() -> None:
    body = "Looks fine otherwise, though the log shows an error now and then."
    c = decide("Slow query on the reports page", body)
    assert c.workflow == "database-performance", c.reason
    assert decide("Reports page", body).workflow is None  # the body alone is too thin


def test_a_near_tie_goes_to_the_workflow_the_title_speaks_for() -> None:
    """Scores within the margin tie: database-performance 10 (title) against error-investigation 11 (body)."""
    body = "It took 20s and then returned a 500 error with an exception in the log and wrong totals; the export fails too."
    weighed = classify.weigh(TRIAGE, title="Search query is slow", body=body)
    scores = {k.workflow: k.score for k in weighed.cases}
    assert 0 < scores["error-investigation"] - scores["database-performance"] <= classify.MARGIN
    assert decide("Search query is slow", body).workflow == "database-performance"


def test_template_environment_sections_and_checkbox_boilerplate_are_noise() -> None:
    c = decide("Crash when saving a note", BUG_TEMPLATE)
    assert c.workflow == "error-investigation", c.reason
    found = hits("x", BUG_TEMPLATE)
    assert not found["devops-pipeline"] and not found["security-fix"]  # Docker/Kubernetes/security were noise


def test_a_negated_keyword_does_not_count() -> None:
    body = "This is not a security issue, but exporting a report crashes the worker."
    assert "security" not in hits("Export", body)["security-fix"]
    assert decide("Export fails", body).workflow == "error-investigation"
    assert "crash*" not in hits("x", "The worker doesn't crash anymore.")["error-investigation"]


def test_mentions_link_queries_and_function_calls_are_not_words() -> None:
    found = hits("Export", "cc @acme/security-team, see https://ci.example/run?token=abc and `alert(1)`.")
    assert not found["security-fix"] and not found["error-investigation"]


def test_keywords_in_scripts_without_spaces_are_found_inside_words() -> None:
    """Chinese runs words together: 漏洞 (vulnerability) ends 路径遍历漏洞, with no space before it."""
    c = decide("路径遍历漏洞", "FileDownload.java中下载文件时未检验文件名，可能下载任意文件。")
    assert c.workflow == "security-fix", c.reason


def test_a_keyword_naming_tests_describes_tests_not_the_work() -> None:
    """'Integration tests' are tests: failing ones are investigated, no integration is set up."""
    c = decide("Integration tests are broken", "13 failed, 107 passed; the assertion error is new since Monday.")
    assert c.workflow == "error-investigation", c.reason
    assert decide("Slack integration", "Post build results to our channel.").workflow == "integration-setup"


def test_a_score_below_the_threshold_cannot_win_a_tie() -> None:
    """backend-feature 5 (the label) against long-running-project 4 (a weak word in the title)."""
    c = decide("Second phase of the settings work", "", ("enhancement",))
    assert c.workflow == "backend-feature", c.reason


def test_identifiers_are_read_as_words() -> None:
    assert "token*" in hits("API_TOKEN printed in the deploy log")["security-fix"]
    c = decide("TypeError: cannot read properties of undefined (reading 'map')")
    assert c.workflow == "error-investigation", c.reason  # "type error" and the shape of an exception


def test_a_task_list_of_linked_issues_is_a_long_running_project() -> None:
    c = decide("Move attachments to object storage", TRACKER)
    assert c.workflow == "long-running-project", c.reason


# ---- asking instead of guessing ----------------------------------------------------------------------

@pytest.mark.parametrize("title, body", [
    ("Dashboard", "Please have a look."),
    ("Flaky latency thing", ""),  # one hint word in the title
    ("Settings page", "Sometimes it is slow."),  # one hint in the body
])
def test_thin_evidence_asks(title: str, body: str) -> None:
    c = decide(title, body)
    assert c.workflow is None and c.confidence < 0.5 and "no label or keyword" in c.reason


def test_an_issue_type_label_nothing_contradicts_is_enough() -> None:
    """A bug report whose words name nothing else: a maintainer starts an investigation, not a question."""
    c = decide("Something about the settings page", "", ("bug",))
    assert c.workflow == "error-investigation" and c.reason.startswith("label 'bug'")


@pytest.mark.parametrize("title, body, labels", [
    ("Fix typo in README", "'recieve' should be 'receive' in the install section.", ()),
    ("Document the Slack integration setup", "A short example would help.", ("documentation",)),
    ("Question: how to run behind a proxy?", "Is there a setting for it?", ()),
    ("Connect MYSQL Database ?", "", ()),  # a title asking, whatever it names
    ("Docker setup", "I'm new to this and it won't start, what am I doing wrong? Please help.", ()),
    ("[NOT FOR MERGE] See if CI fails on a failing unit test", "Just checking the CI loop; must not be merged.", ()),
])
def test_an_issue_no_workflow_fits_asks(title: str, body: str, labels: tuple[str, ...]) -> None:
    c, evidence = classify_explain.explain(TRIAGE, title=title, body=body, labels=labels)
    assert c.workflow is None, c.reason
    assert evidence.decided_by == "nothing" and evidence.against and "asks for a label" in evidence.why


def test_a_question_shaped_title_still_places_a_report_whose_words_name_the_work() -> None:
    c = decide("Why does the app crash on start?", "Segmentation fault (core dumped) right after the splash screen.")
    assert c.workflow == "error-investigation", c.reason


def test_a_duplicate_label_asks_whatever_the_content() -> None:
    title, body = "Docker build fails in the helm install step", BROKEN_WORKFLOW
    assert decide(title, body).workflow == "devops-pipeline"
    c = decide(title, body, ("status/duplicate",))
    assert c.workflow is None and "'status/duplicate' says no work is wanted" in c.reason


# ---- sub-classes, confidence, hostile text -----------------------------------------------------------

@pytest.mark.parametrize("title, body, subclass", [
    ("Helm rollout to staging fails", "The deploy job times out after the image tag bump.", "deployment"),
    ("Terraform plan wants to recreate the VPC", "Our k8s cluster would be torn down.", "infrastructure"),
    ("Grafana dashboard shows no metrics", "Prometheus alerting stopped after the upgrade.", "monitoring"),
])
def test_devops_subclasses_are_kept_under_a_bug_label(title: str, body: str, subclass: str) -> None:
    c = decide(title, body, ("bug",))
    assert (c.workflow, c.subclass) == ("devops-pipeline", subclass), c.reason


def test_confidence_is_a_half_on_a_tie_and_higher_with_a_lead() -> None:
    tie = decide("Security outage")  # security 10 against error-investigation 10: priority decides
    assert tie.workflow == "security-fix" and tie.confidence == 0.5
    # security 6 against error-investigation 7 (kind/bug, "error"): a tie the margin rule gave to security
    broken = decide("Comment preview", "Stored XSS: <img src=x onerror=alert(1)> and an error", ("kind/bug",))
    assert broken.workflow == "security-fix" and broken.confidence == 0.5
    clear = decide("Stored XSS in the comment preview", XSS)
    assert clear.workflow == "security-fix" and 0.5 < clear.confidence <= 0.9


@pytest.mark.parametrize("body", [
    "```" * 20_000,
    "### Environment\n" * 20_000,
    "- [ ] #1\n" * 20_000,
    "not " * 50_000 + "crash",
    "\u202e\u200b" * 10_000 + "<!-- xss injection cve -->",
    "at a.b(\n" * 20_000,
    None,
], ids=["fences", "headings", "tasks", "negations", "invisible", "frames", "null"])
def test_hostile_bodies_are_read_quickly_and_never_crash(body: Any) -> None:
    started = time.monotonic()
    c = decide("Something", body)
    assert isinstance(c, Classification) and time.monotonic() - started < 5


# ---- a label added after opening steers; a template's label is part of the opening ------------------------------


def _labeled(sender_id: int, association: str) -> dict[str, Any]:
    """``issues.labeled`` for "Typo in README" (nothing in it places it) with a ``bug`` label, as GitHub sends it."""
    author = {"login": "reporter", "id": 11, "type": "User"}
    sender = author if sender_id == 11 else {"login": "maintainer", "id": sender_id, "type": "User"}
    return {"action": "labeled", "label": {"name": "bug"}, "sender": sender, "installation": {"id": 1},
            "repository": {"full_name": "o/r", "name": "r", "owner": {"login": "o"}},
            "issue": {"number": 5, "title": "Typo in README", "body": "The word 'recieve' is misspelt.",
                      "labels": [{"name": "bug"}], "user": author, "author_association": association}}


@pytest.mark.parametrize(("sender_id", "association", "steers"), [
    (11, "NONE", False),  # an outsider's issue template set the label: the bot asked, and must not now start work
    (11, "FIRST_TIME_CONTRIBUTOR", False),
    (11, "OWNER", True),  # a maintainer labelling their own issue steers like anyone with triage access
    (42, "NONE", True),  # a maintainer labelling an outsider's issue steers
])
def test_only_a_label_a_person_adds_steers(sender_id: int, association: str, steers: bool) -> None:
    from bot.core import events
    from bot.core.triage import decide

    item = events.parse("issues", _labeled(sender_id, association), "d-1")
    assert isinstance(item, events.WorkItem)
    opened = decide(dataclasses.replace(item, action="opened", added_label=None), load_catalog())
    assert opened.workflow is None  # the content alone places nothing
    assert decide(item, load_catalog()).workflow == ("error-investigation" if steers else None)


@pytest.mark.parametrize(("sender_id", "association", "workflow"), [
    (42, "NONE", "error-investigation"),  # a maintainer's label decides against what the content says
    (11, "NONE", "backend-feature"),  # the outsider's template label is evidence, and the content outweighs it
])
def test_a_label_a_person_adds_decides_even_where_the_content_places_the_item(
        sender_id: int, association: str, workflow: str) -> None:
    """Labels at opening are weighed (the learned model may outweigh them); adding one is a person steering, so it
    wins over the content too, not only where the content placed nothing."""
    from bot.core import events
    from bot.core.triage import decide

    payload = _labeled(sender_id, association)
    payload["issue"] |= {"title": "Add an API endpoint to export invoices as CSV",
                         "body": "New REST endpoint GET /api/invoices/export with pagination and filters."}
    item = events.parse("issues", payload, "d-2")
    assert isinstance(item, events.WorkItem)
    decision = decide(item, load_catalog())
    assert decision.workflow == workflow
    if workflow == "error-investigation":
        assert "was just added" in decision.reason and "the content alone: backend-feature" in decision.reason


def test_the_ask_names_a_label_the_content_outweighed_and_how_to_steer() -> None:
    from bot.core.render import ask_for_label

    labels = {"bug": "error-investigation", "api": "backend-feature"}
    text = ask_for_label("the evidence that no workflow fits outweighs error-investigation's 16", labels,
                         ["bug", "@org/team <!-- x -->", "question"])
    assert "already carries `bug` (`error-investigation`), which did not decide it" in text and "add it again" in text
    assert "@org/team" not in text  # only labels that map to a workflow are named, and only through code spans
    plain = ask_for_label("no label or keyword clearly matches a workflow", labels, ["question"])
    assert "already carries" not in plain and plain.endswith("|")


def test_a_bots_label_does_not_steer_and_a_turned_off_workflow_steers_nowhere() -> None:
    """Found by attack: an Actions labeler that reads the author's words would let the author steer; and a label
    for a workflow the repository turned off must not throw away what the content placed."""
    from bot.core import events
    from bot.core.triage import decide

    payload = _labeled(42, "NONE")
    payload["issue"] |= {"title": "Add an API endpoint to export invoices as CSV",
                         "body": "New REST endpoint GET /api/invoices/export with pagination and filters."}
    payload["sender"] = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}
    item = events.parse("issues", payload, "d-3")
    assert isinstance(item, events.WorkItem)
    assert decide(item, load_catalog()).workflow == "backend-feature"
    payload["sender"] = {"login": "maintainer", "id": 42, "type": "User"}
    item = events.parse("issues", payload, "d-4")
    assert isinstance(item, events.WorkItem)
    assert decide(item, load_catalog()).workflow == "error-investigation"
    off = decide(item, load_catalog(), enabled=["backend-feature"])
    assert off.workflow == "backend-feature" and "was just added" not in off.reason


def test_a_steer_keeps_the_subclass_and_explain_says_it_steered() -> None:
    from bot.core import events
    from bot.core.triage import decide, explain

    payload = _labeled(42, "NONE")
    payload["label"] = {"name": "devops"}
    payload["issue"] |= {"title": "Add an API endpoint to export invoices as CSV",
                         "body": "New REST endpoint GET /api/invoices/export with pagination and filters, and the "
                                 "metrics for it.", "labels": [{"name": "devops"}]}
    item = events.parse("issues", payload, "d-5")
    assert isinstance(item, events.WorkItem)
    opened = decide(dataclasses.replace(item, action="opened", added_label=None), load_catalog())
    assert opened.workflow == "backend-feature"  # the content outweighs the template-less label at opening
    decision = decide(item, load_catalog())
    assert (decision.workflow, decision.subclass) == ("devops-pipeline", "monitoring")
    _, evidence = explain(item, load_catalog())
    assert "was just added" in evidence["why"] and "turned off" not in evidence["why"]


def test_the_ask_names_only_labels_of_workflows_the_repository_runs() -> None:
    from bot.core.triage import outweighed

    labels = {"bug": "error-investigation", "security": "security-fix"}
    assert outweighed(["Bug", "security", "question", "bug"], labels, ["error-investigation"]) == ("Bug",)
    assert outweighed(["bug"], labels, []) == ()
